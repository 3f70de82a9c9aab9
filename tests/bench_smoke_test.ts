/**
 * The benchmarks are not run in CI, but a tiny run of each is: every
 * contestant path runs, and each benchmark prints its figures and its
 * machine-readable RESULT line. The figures of a smoke run mean nothing;
 * only that they are there is checked. The soak and the API-load run mostly
 * wait (fixed event rates, fixed windows): they run beside the others.
 */

import assert from "node:assert/strict";

const BENCH = new URL("../bench/main.ts", import.meta.url).pathname;

interface BenchRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `bench/main.ts --smoke <name>` to the end. */
async function smoke(name: string, chartsDir: string): Promise<BenchRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--frozen", BENCH, "--smoke", "--charts", chartsDir, name],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** The JSON of the `RESULT <name>` line; fails with the run's output when missing. */
function resultOf(name: string, run: BenchRun): Record<string, unknown> {
  const context = `\n--- stdout\n${run.stdout}\n--- stderr (end)\n${run.stderr.slice(-3000)}`;
  assert.equal(run.code, 0, `bench ${name} exited with ${run.code}${context}`);
  const line = run.stdout.split("\n").find((l) => l.startsWith(`RESULT ${name} `));
  assert.ok(line !== undefined, `no RESULT ${name} line${context}`);
  return JSON.parse(line.slice(`RESULT ${name} `.length));
}

async function onPath(command: string): Promise<boolean> {
  try {
    return (await new Deno.Command(command, {
      args: ["version", "--client"],
      stdout: "null",
      stderr: "null",
    })
      .output()).success;
  } catch {
    return false;
  }
}

async function assertChart(dir: string, file: string): Promise<void> {
  const svg = await Deno.readTextFile(`${dir}/${file}`);
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\n$/);
}

interface Contestant {
  name: string;
  eventsPerSecond: number;
  idleRss: number;
  peakRss: number;
}

interface Run extends Contestant {
  events: number;
  figures: Record<string, number>;
}

Deno.test("benchmark smoke runs print the figures of every benchmark", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kevents-bench-smoke-" });
  const soakRun = smoke("soak", dir);
  const apiLoadRun = smoke("apiload", dir);
  try {
    await t.step(
      "throughput: every contestant reads the 2,000 events and the ratios are computed",
      async () => {
        const r = resultOf("throughput", await smoke("throughput", dir));
        assert.equal(r.events, 2000);
        const contestants = r.contestants as Contestant[];
        const runs = r.runs as Run[];
        const expected = [
          "raw reader (undici)",
          "raw reader (Deno fetch)",
          "kevents pump",
          "client-node Watch",
          ...(await onPath("kubectl") ? ["kubectl (watch)", "kubectl (list)"] : []),
        ];
        assert.deepEqual(contestants.map((c) => c.name).sort(), [...expected].sort());
        assert.deepEqual(runs.map((c) => c.name).sort(), [...expected].sort());
        for (const c of contestants) {
          assert.ok(c.eventsPerSecond > 0, `${c.name}: ${c.eventsPerSecond} events/s`);
          assert.ok(c.peakRss > 0, `${c.name}: no peak RSS`);
        }
        for (const run of runs) {
          assert.ok(run.events >= 2000, `${run.name} read ${run.events} events`);
        }
        const pump = runs.find((c) => c.name === "kevents pump")!;
        assert.ok(pump.idleRss > 0);
        assert.ok(pump.figures.checkpointWrites! > 0, "the pump wrote no checkpoint");
        assert.ok(Number(r.baselineRss) > 0);
        const ratios = r.ratios as Record<string, number>;
        for (const key of ["pumpVsClientNode", "pumpVsRaw", "pumpVsRawFetch", "pumpPeakVsIdle"]) {
          assert.ok(
            Number.isFinite(ratios[key]) && ratios[key]! > 0,
            `ratio ${key}: ${ratios[key]}`,
          );
        }
        assert.equal((r.keventsFlags as { source: string }).source, "shipped");
        await assertChart(dir, "bench_throughput.svg");
        await assertChart(dir, "bench_throughput_rss.svg");
      },
    );

    await t.step(
      "catchup: the pump relists after the 410 in pages of 500 and watches again",
      async () => {
        const r = resultOf("catchup", await smoke("catchup", dir));
        assert.ok(Number(r.delivered) >= 2000, `delivered ${r.delivered}`);
        assert.ok(Number(r.pages) >= 4, `pages ${r.pages}`);
        assert.equal(r.watches, 2);
        assert.ok(Number(r.seconds) > 0);
        assert.ok(Number(r.peakRss) > 0 && Number(r.idleRss) > 0);
        await assertChart(dir, "bench_catchup_rss.svg");
      },
    );

    await t.step("failover: a handover is timed", async () => {
      const r = resultOf("failover", await smoke("failover", dir));
      const cells = r.cells as { takeoverMs: number[] }[];
      assert.ok(cells.length > 0 && cells.every((c) => c.takeoverMs.length > 0));
    });

    await t.step("apiload: requests per replica are counted in every phase", async () => {
      const r = resultOf("apiload", await apiLoadRun);
      const runs = r.runs as { phases: unknown[] }[];
      assert.ok(runs.length > 0 && runs.every((run) => run.phases.length > 0));
    });

    await t.step(
      "memory: an idle follower, a leader and the empty Deno floor are read from /proc",
      async () => {
        const r = resultOf("memory", await smoke("memory", dir));
        const flags = r.keventsFlags as { source: string; runFlags: string[] };
        assert.equal(flags.source, "shipped");
        assert.ok(flags.runFlags.includes("--no-code-cache"), flags.runFlags.join(" "));
        const rounds = r.rounds as Record<string, { rss: number; hwm: number } | number>[];
        assert.equal(rounds.length, 1);
        for (const role of ["follower", "leader", "floor"]) {
          const m = r[role] as { rss: number; hwm: number };
          assert.ok(m.rss > 0 && m.hwm >= m.rss, `${role}: ${JSON.stringify(m)}`);
        }
        assert.ok(Number(rounds[0]!.deliveredPerSecond) > 0, "the leader delivered nothing");
        const met = r.met as Record<string, unknown>;
        assert.equal(typeof met.follower, "boolean");
        assert.equal(typeof met.leader, "boolean");
        await assertChart(dir, "bench_memory.svg");
      },
    );

    await t.step("soak: kevents run delivers to stdout while its RSS is sampled", async () => {
      const r = resultOf("soak", await soakRun);
      assert.equal(r.exitCode, 0);
      const samples = r.samples as { rss: number; delivered: number }[];
      assert.ok(samples.length >= 10, `${samples.length} samples`);
      assert.ok(samples.every((s) => s.rss > 0));
      assert.ok(Number(r.delivered) >= 5000, `delivered ${r.delivered}`);
      assert.equal(typeof r.withinTarget, "boolean");
      await assertChart(dir, "bench_soak_rss.svg");
    });
  } finally {
    // However a step ended, no benchmark process is left running.
    await Promise.all([soakRun, apiLoadRun]);
    await Deno.remove(dir, { recursive: true });
  }
});
