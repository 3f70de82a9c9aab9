/**
 * Benchmark 6, memory: what two `kevents run` replicas hold resident as
 * shipped. One fake API server process generates a steady 5 events/s; two
 * replicas (`deno run` with the shipped flags, bench/_shipped.ts; the lease
 * lock, followers watching it, the stdout sink, the health endpoint: all
 * kevents' defaults) elect a leader, which delivers them, while the other
 * follows. 60 s after the leader's pump started (`--smoke`: 8 s) the
 * benchmark reads each replica's VmRSS and its peak since start (VmHWM)
 * from /proc. Beside them the same run measures the floor: an empty Deno
 * script, run with the same flags, that only sleeps. Three rounds, each
 * with fresh processes; the median counts (`--smoke`: one round).
 *
 * Targets of issue 11: an idle follower at most 64 MiB, the leader at most
 * 72 MiB.
 *
 * @module
 */

import { LINES, median, Replica, sleep, withTimeout } from "./_replicas.ts";
import {
  describeMachine,
  fmt,
  type Machine,
  machine,
  printResult,
  ProgressLine,
  table,
} from "./_report.ts";
import { mib, type ProcMemory, readProcMemory } from "./_rss.ts";
import { startBenchServer } from "./_server.ts";
import { describeKeventsFlags, type KeventsFlags, keventsFlags } from "./_shipped.ts";
import { barChart, chartFile, writeChart } from "./_svg.ts";
import type { BenchRunOptions } from "./throughput.ts";

/** The issue's targets, in MiB of VmRSS. */
export const MEMORY_TARGETS = { followerMiB: 64, leaderMiB: 72 } as const;

/** Events per second the fake API server generates for the leader. */
const RATE = 5;
/** Rounds of a full run. */
const ROUNDS = 3;

/** What one round read from /proc. */
export interface MemoryRound {
  follower: ProcMemory;
  leader: ProcMemory;
  floor: ProcMemory;
  /** Events the leader delivered to stdout while it was measured, per second. */
  deliveredPerSecond: number;
  /** The machine's 1-minute load average when the memory was read (it is shared). */
  load1: number;
}

/** What the memory benchmark found (its RESULT line). Sizes in bytes. */
export interface MemoryResult {
  smoke: boolean;
  machine: Machine;
  /** The Deno flags of the replicas and the floor. */
  keventsFlags: KeventsFlags;
  rate: number;
  /** Seconds from the leader's "Pump started" to the reading. */
  waitSeconds: number;
  rounds: MemoryRound[];
  /** Medians over the rounds, RSS and peak each on its own. */
  follower: ProcMemory;
  leader: ProcMemory;
  floor: ProcMemory;
  met: { follower: boolean; leader: boolean };
  targets: typeof MEMORY_TARGETS;
}

/** The script of the floor: Deno with nothing to do but stay alive. */
const EMPTY_SCRIPT = 'console.log("ready");\nsetInterval(() => {}, 2 ** 30);\n';

/** An empty Deno script read from stdin (`deno run <flags> -`), sleeping until killed. */
class EmptyDeno {
  readonly pid: number;
  #child: Deno.ChildProcess;
  #stdout: ReadableStreamDefaultReader<string>;
  #stderr: Promise<string>;

  constructor(denoFlags: readonly string[]) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...denoFlags, "-"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.#child.pid;
    this.#stdout = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stderr = new Response(this.#child.stderr).text();
  }

  /** Hands it the script and resolves once it runs. */
  async start(timeoutMs: number): Promise<void> {
    const writer = this.#child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(EMPTY_SCRIPT));
    await writer.close();
    const first = await withTimeout(this.#stdout.read(), timeoutMs, "the empty Deno script");
    if (first.value?.startsWith("ready") !== true) {
      throw new Error(`The empty Deno script did not start: ${(await this.#stderr).trim()}`);
    }
  }

  /** Kills it and waits for the exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await this.#child.status;
    await this.#stdout.cancel().catch(() => {});
    await this.#stderr.catch(() => "");
  }
}

/**
 * Checks that `pid` is Deno itself (not a wrapper) running with `denoFlags`,
 * so that the memory read is that of the process measured, as configured.
 */
function assertDenoProcess(pid: number, name: string, denoFlags: readonly string[]): void {
  const exe = Deno.realPathSync(`/proc/${pid}/exe`);
  if (exe !== Deno.realPathSync(Deno.execPath())) {
    throw new Error(`Cannot measure ${name}: process ${pid} is ${exe}, not Deno`);
  }
  const args = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
  const missing = denoFlags.filter((f) => !args.includes(f));
  if (missing.length > 0) {
    throw new Error(`Cannot measure ${name}: process ${pid} runs without ${missing.join(" ")}`);
  }
}

function readOrThrow(pid: number, name: string): ProcMemory {
  const m = readProcMemory(pid);
  if (m === undefined) throw new Error(`Cannot read the memory of ${name}: it has exited`);
  return m;
}

function counter(): { count: number; add: (chunk: Uint8Array) => void } {
  const c = {
    count: 0,
    add: (chunk: Uint8Array) => {
      let i = -1;
      while ((i = chunk.indexOf(10, i + 1)) >= 0) c.count++;
    },
  };
  return c;
}

/** One round: a fresh server, two fresh replicas and a fresh floor, read once. */
async function runRound(
  flags: KeventsFlags,
  o: {
    waitMs: number;
    round: string;
    progress: ProgressLine;
    sinks: string;
    env: Record<string, string>;
  },
): Promise<MemoryRound> {
  await using server = await startBenchServer({ rate: RATE });
  // With the otlp or webhook sink, a receiver that takes every request.
  const sinks = o.sinks.split(",");
  await using receiver = sinks.includes("otlp") || sinks.includes("webhook")
    ? Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
      await req.arrayBuffer();
      return new Response("", {
        status: 200,
        headers: { "Content-Type": "application/x-protobuf" },
      });
    })
    : undefined;
  const receiverEnv: Record<string, string> = receiver === undefined ? {} : {
    KEVENTS_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.addr.port}`,
    KEVENTS_WEBHOOK_URL: `http://127.0.0.1:${receiver.addr.port}/hook`,
  };
  await using floor = new EmptyDeno(flags.runFlags);
  const delivered = [counter(), counter()];
  const replicas: Replica[] = [];
  try {
    for (const [i, suffix] of ["a", "b"].entries()) {
      replicas.push(
        new Replica({
          name: `kevents-memory-${suffix}`,
          kubeconfig: server.info.kubeconfig,
          // kevents' default sink; its lines are counted to check that the leader works.
          sinks: o.sinks,
          denoFlags: flags.runFlags,
          onStdout: delivered[i]!.add,
          env: { KEVENTS_HEALTH_ADDRESS: "127.0.0.1", ...receiverEnv, ...o.env },
        }),
      );
    }
    await floor.start(60_000);
    const exited = Promise.race(replicas.map((r) =>
      r.done.then((s) => {
        throw new Error(`${r.name} exited with code ${s.code} during the round`);
      })
    ));
    exited.catch(() => {});
    const leader = await Promise.race([
      withTimeout(
        Promise.race(replicas.map((r) => r.waitFor(LINES.pumpStarted, 0).then(() => r))),
        120_000,
        "the first leader",
      ),
      exited,
    ]);
    const follower = replicas.find((r) => r !== leader)!;
    const holder = leader.logs.findLast(LINES.leads)?.properties.identity;
    if (typeof holder !== "string") throw new Error(`${leader.name} leads under no identity`);
    await Promise.race([
      withTimeout(follower.waitFor(LINES.leaderIs(holder), 0), 60_000, "the follower"),
      exited,
    ]);
    for (
      const [pid, name] of [[leader.pid, "the leader"], [follower.pid, "the follower"]] as const
    ) {
      assertDenoProcess(pid, name, flags.runFlags);
    }
    assertDenoProcess(floor.pid, "the empty Deno script", flags.runFlags);
    const counted = delivered[replicas.indexOf(leader)]!;
    const from = counted.count;
    const t0 = performance.now();
    o.progress.done(
      `  memory ${o.round}: ${leader.name} leads, ${follower.name} follows; reading in ${
        o.waitMs / 1000
      } s`,
    );
    await Promise.race([sleep(o.waitMs), exited]);
    const round: MemoryRound = {
      follower: readOrThrow(follower.pid, "the follower"),
      leader: readOrThrow(leader.pid, "the leader"),
      floor: readOrThrow(floor.pid, "the empty Deno script"),
      deliveredPerSecond: (counted.count - from) / ((performance.now() - t0) / 1000),
      load1: Deno.loadavg()[0]!,
    };
    // The roles held for the whole round: a handover would mix them up.
    if (follower.logs.some(LINES.pumpStarted) || leader.logs.filter(LINES.leads).length !== 1) {
      throw new Error("Leadership moved during the round: its memory figures would mix the roles");
    }
    if (round.deliveredPerSecond === 0) {
      throw new Error(`${leader.name} delivered no event in ${o.waitMs / 1000} s`);
    }
    o.progress.done(
      `  memory ${o.round}: follower ${mib(round.follower.rss)} MiB (peak ${
        mib(round.follower.hwm)
      }), leader ${mib(round.leader.rss)} MiB (peak ${mib(round.leader.hwm)}), floor ${
        mib(round.floor.rss)
      } MiB; the leader delivered ${fmt(round.deliveredPerSecond, 1)} events/s`,
    );
    return round;
  } finally {
    await Promise.all(replicas.map((r) => r.stop()));
  }
}

function medianMemory(xs: readonly ProcMemory[]): ProcMemory {
  return { rss: median(xs.map((x) => x.rss)), hwm: median(xs.map((x) => x.hwm)) };
}

/** Runs the memory benchmark; prints its figures and a RESULT line. */
export async function run(options: BenchRunOptions): Promise<void> {
  const waitSeconds = options.smoke ? 8 : 60;
  const rounds = options.smoke ? 1 : ROUNDS;
  const flags = keventsFlags(options.keventsV8Flags);
  const m = machine();
  const progress = new ProgressLine();
  console.log(
    `## Memory: an idle follower and a leader at ${RATE} events/s, read ${waitSeconds} s after ` +
      `the leader's pump started${options.smoke ? " (smoke)" : ""}`,
  );
  console.log(describeMachine(m));
  console.log(
    `${describeKeventsFlags(flags)}; the floor, an empty Deno script, runs with them too`,
  );
  console.log(`kevents' sinks: ${options.keventsSinks ?? "stdout"}`);
  if (options.keventsEnv !== undefined) {
    console.log(
      `kevents' extra environment: ${
        Object.entries(options.keventsEnv).map(([k, v]) => `${k}=${v}`).join(" ")
      }`,
    );
  }
  const results: MemoryRound[] = [];
  for (let i = 0; i < rounds; i++) {
    const round = `round ${i + 1} of ${rounds}`;
    progress.done(
      `memory ${round}: a fake API server at ${RATE} events/s, two replicas, the floor`,
    );
    results.push(
      await runRound(flags, {
        waitMs: waitSeconds * 1000,
        round,
        progress,
        sinks: options.keventsSinks ?? "stdout",
        env: options.keventsEnv ?? {},
      }),
    );
  }
  const follower = medianMemory(results.map((r) => r.follower));
  const leader = medianMemory(results.map((r) => r.leader));
  const floor = medianMemory(results.map((r) => r.floor));
  const met = {
    follower: follower.rss <= MEMORY_TARGETS.followerMiB * 2 ** 20,
    leader: leader.rss <= MEMORY_TARGETS.leaderMiB * 2 ** 20,
  };
  const perRound = (pick: (r: MemoryRound) => number) =>
    results.map((r) => fmt(mib(pick(r)), 1)).join(", ");
  const row = (name: string, of: (r: MemoryRound) => ProcMemory, target?: number) => {
    const med = medianMemory(results.map(of));
    return [
      name,
      fmt(mib(med.rss), 1),
      perRound((r) => of(r).rss),
      fmt(mib(med.hwm), 1),
      name.startsWith("deno") ? "-" : fmt(mib(med.rss - floor.rss), 1),
      target === undefined ? "-" : `<= ${target} MiB`,
      target === undefined ? "-" : med.rss <= target * 2 ** 20 ? "met" : "MISSED",
    ];
  };
  console.log();
  console.log(table(
    [
      "process",
      `RSS (MiB, ${rounds === 1 ? "1 round" : `median of ${rounds}`})`,
      "per round",
      "peak VmHWM (MiB)",
      "above the floor (MiB)",
      "target",
      "met",
    ],
    [
      row("idle follower", (r) => r.follower, MEMORY_TARGETS.followerMiB),
      row(`leader at ${RATE} events/s`, (r) => r.leader, MEMORY_TARGETS.leaderMiB),
      row("deno (empty script): the floor", (r) => r.floor),
    ],
  ));
  console.log();
  console.log(
    `follower RSS: ${fmt(mib(follower.rss), 1)} MiB (target <= ${MEMORY_TARGETS.followerMiB} MiB: ${
      met.follower ? "met" : "MISSED"
    }); leader RSS: ${fmt(mib(leader.rss), 1)} MiB (target <= ${MEMORY_TARGETS.leaderMiB} MiB: ${
      met.leader ? "met" : "MISSED"
    }); floor ${fmt(mib(floor.rss), 1)} MiB; the leader delivered ${
      results.map((r) => fmt(r.deliveredPerSecond, 1)).join(", ")
    } events/s; load average ${results.map((r) => fmt(r.load1, 1)).join(", ")} when read`,
  );
  const result: MemoryResult = {
    smoke: options.smoke,
    machine: m,
    keventsFlags: flags,
    rate: RATE,
    waitSeconds,
    rounds: results,
    follower,
    leader,
    floor,
    met,
    targets: MEMORY_TARGETS,
  };
  if (options.chartsDir !== undefined) {
    console.log(`chart: ${await writeMemoryChart(result, options.chartsDir)}`);
  }
  printResult("memory", result);
}

/**
 * Writes bench_memory.svg (RSS and peak of the follower, the leader and
 * the floor, with the targets) into `dir`, with the V8 flags in its name
 * for a run with `--kevents-v8-flags`; returns its path.
 */
export async function writeMemoryChart(result: MemoryResult, dir: string): Promise<string> {
  const m = result.machine;
  const n = result.rounds.length;
  const verdict = (ok: boolean, target: number) => `target ${target}: ${ok ? "met" : "MISSED"}`;
  return await writeChart(
    dir,
    chartFile("bench_memory", result.keventsFlags.override),
    barChart({
      title: "Memory: kevents run as shipped (MiB resident, lower is better)",
      subtitle: `read ${result.waitSeconds} s after the leader's pump started, ${result.rate} ` +
        `events/s; ${n === 1 ? "1 round" : `median of ${n} rounds`}; ${
          result.keventsFlags.runFlags.join(" ") || "no Deno flags"
        }; ${m.cores} cores, ${m.memoryGiB} GiB; ${m.date.slice(0, 10)}`,
      unit: "MiB resident",
      series: ["RSS (VmRSS)", "peak since start (VmHWM)"],
      rows: [
        {
          label: "idle follower",
          values: [mib(result.follower.rss), mib(result.follower.hwm)],
          note: `(${verdict(result.met.follower, MEMORY_TARGETS.followerMiB)})`,
        },
        {
          label: `leader at ${result.rate} events/s`,
          values: [mib(result.leader.rss), mib(result.leader.hwm)],
          note: `(${verdict(result.met.leader, MEMORY_TARGETS.leaderMiB)})`,
        },
        {
          label: "deno (empty script)",
          values: [mib(result.floor.rss), mib(result.floor.hwm)],
        },
      ],
      digits: 1,
    }),
  );
}
