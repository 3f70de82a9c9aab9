/**
 * A minimal Prometheus registry: counters and histograms with labels, gauges
 * without, written in the text exposition format 0.0.4, and nothing more.
 *
 * Why not prom-client: kevents used a small part of it, and importing it cost
 * 5.8 MiB of resident memory in an idle follower (48.6 MiB with yaml and
 * logtape, 54.4 MiB with prom-client as well), against a target of 64 MiB.
 *
 * Per metric: `# HELP` (backslash and newline escaped), `# TYPE`, then one
 * line per series, `name{label="value",...} number` (backslash, double quote
 * and newline escaped). Metrics come in registration order, separated by an
 * empty line as prom-client wrote them; series in first-use order; labels in
 * `labelNames` order. A metric without labels shows 0 before its first use.
 * Histogram buckets are cumulative and end with `le="+Inf"`, equal to
 * `_count`. Names are checked when a metric is created, so a bad one fails at
 * start, not at a scrape.
 *
 * @module
 */

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** The label values of one series: one string per label name. */
export type Labels<T extends string> = Readonly<Record<T, string>>;

/** Options of every metric. */
export interface MetricOptions<T extends string> {
  /** The name: letters, digits, `_` and `:`, not starting with a digit. */
  name: string;
  /** What it measures (a newline is escaped). */
  help: string;
  /** The label names, in the order the series show them; none by default. */
  labelNames?: readonly T[];
  /** The registries that render it; none by default. */
  registers?: readonly Registry[];
}

/** A value as Prometheus reads it: `+Inf`, `-Inf`, `NaN`, integers below 1e21 in full. */
function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (Math.abs(value) === Infinity) return value > 0 ? "+Inf" : "-Inf";
  return String(value);
}

/** Escapes backslash and newline, and in a label value the double quote. */
function escape(text: string, labelValue: boolean): string {
  return text.replace(labelValue ? /[\\"\n]/g : /[\\\n]/g, (c) => c === "\n" ? "\\n" : `\\${c}`);
}

/** One sample line; `labels` is the series' rendered label pairs, maybe empty. */
function sample(name: string, labels: string, value: number): string {
  return `${name}${labels === "" ? "" : `{${labels}}`} ${formatValue(value)}`;
}

/** What the three kinds share: names, label checks, series in first-use order. */
export abstract class Metric<T extends string, S = unknown> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly T[];
  abstract readonly type: "counter" | "gauge" | "histogram";
  /** Series by their rendered label pairs (unique: values are quoted and escaped). */
  readonly #series = new Map<string, S>();

  constructor(options: MetricOptions<T>, reserved?: string) {
    const { name, labelNames = [] } = options;
    if (!METRIC_NAME.test(name)) {
      throw new Error(`Cannot create metric "${name}": its name must match ${METRIC_NAME.source}`);
    }
    for (const [i, label] of labelNames.entries()) {
      const bad = !LABEL_NAME.test(label) || label.startsWith("__") || label === reserved;
      if (bad || labelNames.indexOf(label) !== i) {
        throw new Error(
          `Cannot create metric ${name}: label "${label}" must match ${LABEL_NAME.source}, ` +
            `not start with __${reserved ? `, not be ${reserved}` : ""} and appear once`,
        );
      }
    }
    this.name = name;
    this.help = options.help;
    this.labelNames = [...labelNames];
    for (const registry of options.registers ?? []) registry.register(this);
  }

  /** A new series' state. */
  protected abstract fresh(): S;
  /** The sample lines of one series. */
  protected abstract samples(labels: string, state: S): string[];
  /** Runs before every exposition. */
  protected collect(): void | Promise<void> {}

  /** The rendered label pairs of `labels`, which must give every label name and no other. */
  protected key(labels: Labels<T>): string {
    const names = this.labelNames;
    const exact = Object.keys(labels).length === names.length &&
      names.every((n) => typeof labels[n] === "string");
    if (!exact) {
      throw new Error(
        `Cannot use labels ${JSON.stringify(labels)} on ${this.name}: it takes [${names}]`,
      );
    }
    return names.map((n) => `${n}="${escape(labels[n], true)}"`).join(",");
  }

  /** The state of the series `key`, created on first use. */
  protected at(key: string): S {
    let state = this.#series.get(key);
    if (state === undefined) this.#series.set(key, state = this.fresh());
    return state;
  }

  /** Its lines of the exposition (no final newline), after the collect step. */
  async expose(): Promise<string> {
    await this.collect();
    if (this.labelNames.length === 0) this.at("");
    const lines = [`# HELP ${this.name} ${escape(this.help, false)}`];
    lines.push(`# TYPE ${this.name} ${this.type}`);
    for (const [labels, state] of this.#series) lines.push(...this.samples(labels, state));
    return lines.join("\n");
  }
}

/** A counter's or a gauge's state: one number per series. */
abstract class Scalar<T extends string> extends Metric<T, { value: number }> {
  protected fresh(): { value: number } {
    return { value: 0 };
  }

  protected samples(labels: string, state: { value: number }): string[] {
    return [sample(this.name, labels, state.value)];
  }
}

/** A value that only goes up. */
export class Counter<T extends string = never> extends Scalar<T> {
  readonly type = "counter";

  /** Adds `value` (default 1; finite, not negative) to the series without labels. */
  inc(value?: number): void;
  /** Adds `value` (default 1; finite, not negative) to the series `labels`. */
  inc(labels: Labels<T>, value?: number): void;
  inc(a?: Labels<T> | number, b?: number): void {
    const [labels, value] = typeof a === "object" ? [a, b ?? 1] : [{} as Labels<T>, a ?? 1];
    if (!(Number.isFinite(value) && value >= 0)) {
      throw new RangeError(
        `Cannot increase counter ${this.name} by ${value}: must be finite, >= 0`,
      );
    }
    this.at(this.key(labels)).value += value;
  }
}

/** Options of a {@linkcode Gauge}, which has no labels (kevents' gauges need none). */
export interface GaugeOptions extends Omit<MetricOptions<never>, "labelNames"> {
  /** Runs at every scrape before the gauge is written, the gauge as `this`; none by default. */
  collect?: (this: Gauge) => void | Promise<void>;
}

/** A value that is set. */
export class Gauge extends Scalar<never> {
  readonly type = "gauge";
  readonly #collect: GaugeOptions["collect"];

  constructor(options: GaugeOptions) {
    super(options);
    this.#collect = options.collect;
  }

  /** Sets the value. */
  set(value: number): void {
    this.at("").value = value;
  }

  protected override collect(): void | Promise<void> {
    return this.#collect?.call(this);
  }
}

/** Options of a {@linkcode Histogram}. */
export interface HistogramOptions<T extends string> extends MetricOptions<T> {
  /** The buckets' upper bounds: finite, increasing; `+Inf` is added. */
  buckets: readonly number[];
}

/** Observations per bucket, not cumulative (the last: above every bound), and their sum. */
type HistogramSeries = { counts: number[]; sum: number };

/** Observations counted in buckets, with their sum and count. */
export class Histogram<T extends string = never> extends Metric<T, HistogramSeries> {
  readonly type = "histogram";
  readonly #bounds: readonly number[];

  constructor(options: HistogramOptions<T>) {
    super(options, "le");
    const bounds = options.buckets;
    if (bounds.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= bounds[i - 1]!))) {
      throw new Error(
        `Cannot create histogram ${options.name}: buckets [${bounds}] must be finite, increasing`,
      );
    }
    this.#bounds = [...bounds];
  }

  /** The series `labels` (`{}` without labels); it appears at its first observation. */
  labels(labels: Labels<T>): { observe(value: number): void } {
    const key = this.key(labels);
    return {
      observe: (value) => {
        const state = this.at(key);
        const i = this.#bounds.findIndex((bound) => value <= bound);
        state.counts[i === -1 ? this.#bounds.length : i]!++;
        state.sum += value;
      },
    };
  }

  protected fresh(): HistogramSeries {
    return { counts: new Array(this.#bounds.length + 1).fill(0), sum: 0 };
  }

  protected samples(labels: string, state: HistogramSeries): string[] {
    const prefix = labels === "" ? "" : `${labels},`;
    const lines: string[] = [];
    let cumulative = 0;
    for (const [i, count] of state.counts.entries()) {
      cumulative += count;
      const le = i < this.#bounds.length ? formatValue(this.#bounds[i]!) : "+Inf";
      lines.push(sample(`${this.name}_bucket`, `${prefix}le="${le}"`, cumulative));
    }
    lines.push(sample(`${this.name}_sum`, labels, state.sum));
    lines.push(sample(`${this.name}_count`, labels, cumulative));
    return lines;
  }
}

/** The metrics one `/metrics` endpoint renders, in registration order. */
export class Registry {
  /** The content type of {@linkcode metrics}' text. */
  readonly contentType = "text/plain; version=0.0.4; charset=utf-8";
  readonly #metrics = new Map<string, Metric<string>>();

  /** Adds `metric`; its name must be new to this registry. */
  register(metric: Metric<string>): void {
    if (this.#metrics.has(metric.name)) {
      throw new Error(`Cannot register metric ${metric.name}: the registry has one of that name`);
    }
    this.#metrics.set(metric.name, metric);
  }

  /** The text exposition, after the gauges' collect callbacks. */
  async metrics(): Promise<string> {
    const parts: string[] = [];
    for (const metric of this.#metrics.values()) parts.push(await metric.expose());
    return parts.map((p) => `${p}\n`).join("\n");
  }
}
