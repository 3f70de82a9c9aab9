/**
 * How the throughput, catch-up and soak benchmarks talk to the person
 * running them: progress on stderr (one rewritten line on a terminal, a
 * line every few seconds otherwise), Markdown tables and the machine on
 * stdout, and one `RESULT <name> <json>` line per benchmark for scripts
 * and the CI smoke test.
 *
 * @module
 */

/** Progress of a long step, on stderr. */
export class ProgressLine {
  #tty = Deno.stderr.isTerminal();
  #lastPrint = 0;
  #encoder = new TextEncoder();
  #open = false;

  /** Shows `text` (rate-limited when stderr is not a terminal). */
  update(text: string): void {
    const now = performance.now();
    if (this.#tty) {
      Deno.stderr.writeSync(this.#encoder.encode(`\r\x1b[K${text}`));
      this.#open = true;
    } else if (now - this.#lastPrint >= 5000) {
      console.error(text);
      this.#lastPrint = now;
    }
  }

  /** Ends the step with a final line. */
  done(text: string): void {
    if (this.#tty && this.#open) Deno.stderr.writeSync(this.#encoder.encode("\r\x1b[K"));
    this.#open = false;
    this.#lastPrint = 0;
    console.error(text);
  }
}

/** Formats a number with thousands separators and at most `digits` decimals. */
export function fmt(n: number, digits = 0): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/** A Markdown table. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map(String));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]?.length ?? 0)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n");
}

/** The machine, as /proc describes it. */
export interface Machine {
  cores: number;
  cpu: string;
  memoryGiB: number;
  /** 1-minute load average when the benchmark started. */
  load1: number;
  deno: string;
  date: string;
}

/** Reads the machine's cores, CPU model, memory and load. */
export function machine(): Machine {
  const read = (path: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch {
      return "";
    }
  };
  const cpuinfo = read("/proc/cpuinfo");
  const memKib = Number(/^MemTotal:\s+(\d+)/m.exec(read("/proc/meminfo"))?.[1] ?? 0);
  return {
    cores: navigator.hardwareConcurrency,
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    memoryGiB: Math.round((memKib / 2 ** 20) * 10) / 10,
    load1: Number(read("/proc/loadavg").split(" ")[0] ?? 0),
    deno: Deno.version.deno,
    date: new Date().toISOString(),
  };
}

/** One line describing the machine. */
export function describeMachine(m: Machine): string {
  return `${m.date.slice(0, 16).replace("T", " ")} UTC; ${m.cores} cores (${m.cpu}), ` +
    `${m.memoryGiB} GiB; load average ${m.load1} at start; Deno ${m.deno}`;
}

/** Prints the machine-readable result line. */
export function printResult(name: string, result: unknown): void {
  console.log(`RESULT ${name} ${JSON.stringify(result)}`);
}

/** Resolves after `ms` (a pause between measurements, not a synchronisation). */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
