/**
 * Specification of `lib/ops/prometheus.ts`, the text exposition format 0.0.4:
 * escaping, cumulative histogram buckets up to `+Inf`, counters that only go
 * up, gauges read at scrape time, names checked at creation, numbers as
 * Prometheus reads them.
 *
 * Two independent judges read the exposition: the Prometheus Python client's
 * parser (Debian's python3-prometheus-client), whose families and values
 * must be the ones written, and `promtool check metrics` (Debian's
 * prometheus package) when it is on the PATH. Each is skipped, with a
 * message, when missing.
 */

import assert from "node:assert/strict";
import { Counter, Gauge, Histogram, Registry } from "../../lib/ops/prometheus.ts";
import { Metrics } from "../../lib/ops/metrics.ts";
import { commandSucceeds } from "../_process.ts";

const PYTHON = "/usr/bin/python3";

const HAVE_PYTHON_PARSER = await commandSucceeds(PYTHON, ["-c", "import prometheus_client.parser"]);
if (!HAVE_PYTHON_PARSER) {
  console.log(
    `SKIPPED: ${PYTHON} cannot import prometheus_client.parser (apt-get install ` +
      "python3-prometheus-client); prometheus_test's Python judge needs it",
  );
}
const HAVE_PROMTOOL = await commandSucceeds("promtool", ["--version"]);
if (!HAVE_PROMTOOL) {
  console.log(
    "SKIPPED: promtool is not on the PATH (Debian's prometheus package has it); " +
      "prometheus_test's promtool judge needs it",
  );
}

/** The help text and the label value that need every escape. */
const AWKWARD_HELP = String.raw`Paths like C:\dir` + '\nand "quotes"';
const AWKWARD_VALUE = String.raw`C:\dir` + '\n"x"';

/** A registry with each kind, every escape and every special value, with the data it holds. */
function sampleRegistry(): Registry {
  const registry = new Registry();
  const registers = [registry];
  const requests = new Counter({
    name: "requests_total",
    help: AWKWARD_HELP,
    labelNames: ["path", "code"],
    registers,
  });
  requests.inc({ path: AWKWARD_VALUE, code: "200" }, 3);
  requests.inc({ code: "500", path: "/" });
  new Counter({ name: "restarts_total", help: "Restarts", registers });
  new Gauge({ name: "up_ratio", help: "Not a number yet", registers }).set(NaN);
  new Gauge({ name: "limit_bytes", help: "No limit", registers }).set(Infinity);
  new Gauge({ name: "floor_bytes", help: "No floor", registers }).set(-Infinity);
  new Gauge({ name: "big_bytes", help: "Large", registers }).set(1e20);
  const latency = new Histogram({
    name: "latency_seconds",
    help: "Latency",
    labelNames: ["sink"],
    buckets: [0.5, 1, 10],
    registers,
  });
  for (const v of [0.25, 0.5, 0.75, 2, 20]) latency.labels({ sink: "a" }).observe(v);
  latency.labels({ sink: "b" }).observe(1);
  return registry;
}

Deno.test("HELP escapes backslash and newline; label values also the double quote", async () => {
  const registry = new Registry();
  new Counter({ name: "x_total", help: AWKWARD_HELP, labelNames: ["path"], registers: [registry] })
    .inc({ path: AWKWARD_VALUE }, 2);
  assert.equal(
    await registry.metrics(),
    [
      String.raw`# HELP x_total Paths like C:\\dir\nand "quotes"`,
      "# TYPE x_total counter",
      String.raw`x_total{path="C:\\dir\n\"x\""} 2`,
      "",
    ].join("\n"),
  );
  assert.equal(registry.contentType, "text/plain; version=0.0.4; charset=utf-8");
});

Deno.test("metrics come in registration order, series in first-use order, labels as declared", async () => {
  const registry = new Registry();
  const b = new Counter({
    name: "b_total",
    help: "B",
    labelNames: ["x", "y"],
    registers: [registry],
  });
  new Counter({ name: "a_total", help: "A", registers: [registry] });
  b.inc({ y: "2", x: "z" });
  b.inc({ x: "a", y: "1" });
  b.inc({ x: "z", y: "2" }, 4);
  assert.equal(
    await registry.metrics(),
    "# HELP b_total B\n# TYPE b_total counter\n" +
      'b_total{x="z",y="2"} 5\nb_total{x="a",y="1"} 1\n' +
      "\n# HELP a_total A\n# TYPE a_total counter\na_total 0\n",
  );
});

Deno.test("a metric with labels shows no series before its first use, one without shows 0", async () => {
  const registry = new Registry();
  new Counter({ name: "l_total", help: "L", labelNames: ["x"], registers: [registry] });
  new Histogram({ name: "h", help: "H", labelNames: ["x"], buckets: [1], registers: [registry] })
    .labels({ x: "unused" });
  new Histogram({ name: "u", help: "U", buckets: [1], registers: [registry] });
  assert.equal(
    await registry.metrics(),
    "# HELP l_total L\n# TYPE l_total counter\n\n" +
      "# HELP h H\n# TYPE h histogram\n\n" +
      '# HELP u U\n# TYPE u histogram\nu_bucket{le="1"} 0\nu_bucket{le="+Inf"} 0\n' +
      "u_sum 0\nu_count 0\n",
  );
});

Deno.test("histogram buckets are cumulative, include their bound, and end with +Inf = _count", async () => {
  const text = await sampleRegistry().metrics();
  const lines = text.split("\n").filter((l) => l.startsWith("latency_seconds"));
  assert.deepEqual(lines, [
    'latency_seconds_bucket{sink="a",le="0.5"} 2',
    'latency_seconds_bucket{sink="a",le="1"} 3',
    'latency_seconds_bucket{sink="a",le="10"} 4',
    'latency_seconds_bucket{sink="a",le="+Inf"} 5',
    'latency_seconds_sum{sink="a"} 23.5',
    'latency_seconds_count{sink="a"} 5',
    'latency_seconds_bucket{sink="b",le="0.5"} 0',
    'latency_seconds_bucket{sink="b",le="1"} 1',
    'latency_seconds_bucket{sink="b",le="10"} 1',
    'latency_seconds_bucket{sink="b",le="+Inf"} 1',
    'latency_seconds_sum{sink="b"} 1',
    'latency_seconds_count{sink="b"} 1',
  ]);
});

Deno.test("counters refuse negative and non-finite increments, and create no series for them", async () => {
  const registry = new Registry();
  const c = new Counter({ name: "c_total", help: "C", labelNames: ["x"], registers: [registry] });
  for (const bad of [-1, -0.5, NaN, Infinity, -Infinity]) {
    assert.throws(() => c.inc({ x: "a" }, bad), RangeError, `inc by ${bad}`);
  }
  assert.doesNotMatch(await registry.metrics(), /c_total\{/);
  c.inc({ x: "a" }, 0);
  c.inc({ x: "a" });
  assert.match(await registry.metrics(), /^c_total\{x="a"\} 1$/m);
});

Deno.test("collect callbacks run at every scrape, not before, and are awaited", async () => {
  const registry = new Registry();
  let depth = 3;
  let calls = 0;
  new Gauge({
    name: "depth",
    help: "D",
    registers: [registry],
    collect() {
      calls++;
      this.set(depth);
    },
  });
  new Gauge({
    name: "later",
    help: "L",
    registers: [registry],
    async collect() {
      await new Promise((r) => setTimeout(r, 1));
      this.set(depth * 2);
    },
  });
  assert.equal(calls, 0);
  assert.match(await registry.metrics(), /^depth 3\n[\s\S]*^later 6$/m);
  depth = 8;
  assert.match(await registry.metrics(), /^depth 8\n[\s\S]*^later 16$/m);
  assert.equal(calls, 2);
});

Deno.test("values are written as Prometheus reads them", async () => {
  const cases: [number, string][] = [
    [0, "0"],
    [-0, "0"],
    [42, "42"],
    [-7, "-7"],
    [0.1, "0.1"],
    [1.5e9, "1500000000"],
    [2 ** 53, "9007199254740992"],
    [1e20, "100000000000000000000"],
    [1e21, "1e+21"],
    [1e-7, "1e-7"],
    [Infinity, "+Inf"],
    [-Infinity, "-Inf"],
    [NaN, "NaN"],
  ];
  for (const [value, text] of cases) {
    const registry = new Registry();
    new Gauge({ name: "g", help: "G", registers: [registry] }).set(value);
    assert.match(await registry.metrics(), new RegExp(`^g ${text.replace("+", "\\+")}$`, "m"));
  }
});

Deno.test("names, labels and buckets are checked when a metric is created or used", async (t) => {
  await t.step("metric names", () => {
    for (const name of ["", "1st", "a-b", "a b", "\u00e9"]) {
      assert.throws(() => new Counter({ name, help: "" }), /^Error: Cannot create metric/);
    }
    new Counter({ name: "ns:sub_total", help: "" });
  });
  await t.step("label names: syntax, __ prefix, duplicates, le on a histogram", () => {
    for (const labelNames of [["1x"], ["a-b"], ["__x"], ["x", "x"]]) {
      assert.throws(() => new Counter({ name: "c", help: "", labelNames }), /label "/);
    }
    assert.throws(
      () => new Histogram({ name: "h", help: "", labelNames: ["le"], buckets: [1] }),
      /label "le" .* not be le/,
    );
    new Counter({ name: "c", help: "", labelNames: ["le", "_x"] });
  });
  await t.step("buckets: finite and increasing", () => {
    for (const buckets of [[1, 1], [2, 1], [1, Infinity], [NaN]]) {
      assert.throws(() => new Histogram({ name: "h", help: "", buckets }), /buckets/);
    }
  });
  await t.step("one name per registry", () => {
    const registry = new Registry();
    new Counter({ name: "c_total", help: "", registers: [registry] });
    assert.throws(
      () => new Gauge({ name: "c_total", help: "", registers: [registry] }),
      /Cannot register metric c_total/,
    );
  });
  await t.step("series must give exactly the label names", () => {
    const c = new Counter({ name: "c", help: "", labelNames: ["a", "b"] });
    const h = new Histogram({ name: "h", help: "", labelNames: ["a"], buckets: [1] });
    const missing = { a: "1" } as unknown as { a: string; b: string };
    const extra = { a: "1", b: "2", c: "3" } as { a: string; b: string };
    assert.throws(() => c.inc(missing), /takes \[a,b\]/);
    assert.throws(() => c.inc(extra), /takes \[a,b\]/);
    assert.throws(() => c.inc(), /takes \[a,b\]/);
    assert.throws(() => h.labels({} as { a: string }), /takes \[a\]/);
  });
});

/** What the Python client's parser read: per family its name, type, help and samples. */
interface ParsedFamily {
  name: string;
  type: string;
  help: string;
  samples: [string, Record<string, string>, number][];
}

const PARSE_PY = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
print(json.dumps([
    {"name": f.name, "type": f.type, "help": f.documentation,
     "samples": [[s.name, s.labels, repr(s.value)] for s in f.samples]}
    for f in text_string_to_metric_families(sys.stdin.read())]))
`;

/** Pipes `text` into `command args` and returns its stdout; fails the test on a non-zero exit. */
async function pipe(command: string, args: string[], text: string): Promise<string> {
  const child = new Deno.Command(command, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  assert.ok(
    out.success,
    `${command} exited ${out.code}: ${decode(out.stdout)}${decode(out.stderr)}`,
  );
  return decode(out.stdout);
}

/** The exposition as the Python client's parser reads it (values from Python's repr). */
async function parseWithPython(text: string): Promise<ParsedFamily[]> {
  const families = JSON.parse(await pipe(PYTHON, ["-c", PARSE_PY], text));
  const number = (v: string) => Number(v.replace("inf", "Infinity").replace("nan", "NaN"));
  return families.map((f: { samples: [string, Record<string, string>, string][] }) => ({
    ...f,
    samples: f.samples.map(([n, l, v]) => [n, l, number(v)]),
  }));
}

Deno.test({
  name: "the Prometheus Python client's parser reads back every family, label and value",
  ignore: !HAVE_PYTHON_PARSER,
  async fn() {
    const families = await parseWithPython(await sampleRegistry().metrics());
    const bucket = (
      sink: string,
      le: string,
      n: number,
    ): [string, Record<string, string>, number] => [
      "latency_seconds_bucket",
      { sink, le },
      n,
    ];
    assert.deepEqual(families, [
      {
        // The parser names a counter's family without its _total.
        name: "requests",
        type: "counter",
        help: AWKWARD_HELP,
        samples: [
          ["requests_total", { path: AWKWARD_VALUE, code: "200" }, 3],
          ["requests_total", { path: "/", code: "500" }, 1],
        ],
      },
      { name: "restarts", type: "counter", help: "Restarts", samples: [["restarts_total", {}, 0]] },
      {
        name: "up_ratio",
        type: "gauge",
        help: "Not a number yet",
        samples: [["up_ratio", {}, NaN]],
      },
      {
        name: "limit_bytes",
        type: "gauge",
        help: "No limit",
        samples: [["limit_bytes", {}, Infinity]],
      },
      {
        name: "floor_bytes",
        type: "gauge",
        help: "No floor",
        samples: [["floor_bytes", {}, -Infinity]],
      },
      { name: "big_bytes", type: "gauge", help: "Large", samples: [["big_bytes", {}, 1e20]] },
      {
        name: "latency_seconds",
        type: "histogram",
        help: "Latency",
        samples: [
          bucket("a", "0.5", 2),
          bucket("a", "1", 3),
          bucket("a", "10", 4),
          bucket("a", "+Inf", 5),
          ["latency_seconds_sum", { sink: "a" }, 23.5],
          ["latency_seconds_count", { sink: "a" }, 5],
          bucket("b", "0.5", 0),
          bucket("b", "1", 1),
          bucket("b", "10", 1),
          bucket("b", "+Inf", 1),
          ["latency_seconds_sum", { sink: "b" }, 1],
          ["latency_seconds_count", { sink: "b" }, 1],
        ],
      },
    ]);
  },
});

/** kevents' own exposition after a little of everything. */
async function keventsExposition(): Promise<string> {
  const metrics = new Metrics();
  metrics.received("Normal");
  metrics.delivered("webhook", [{ type: "Warning", time: new Date().toISOString() }], Date.now());
  metrics.apiRequest("watch", 200);
  metrics.leading(true, 2);
  metrics.watchQueue(() => 5);
  return await metrics.render();
}

Deno.test({
  name: "the Prometheus Python client's parser reads kevents' exposition, one family per TYPE",
  ignore: !HAVE_PYTHON_PARSER,
  async fn() {
    const text = await keventsExposition();
    const families = await parseWithPython(text);
    assert.equal(families.length, text.match(/^# TYPE /gm)?.length);
    const value = (family: string, sample: string) =>
      families.find((f) => f.name === family)?.samples.find((s) => s[0] === sample)?.[2];
    assert.equal(value("kevents_queue_depth", "kevents_queue_depth"), 5);
    assert.equal(value("kevents_leader_transitions", "kevents_leader_transitions"), 2);
    assert.equal(
      value("kevents_delivery_latency_seconds", "kevents_delivery_latency_seconds_count"),
      1,
    );
  },
});

Deno.test({
  name: "promtool check metrics finds no problem in the sample or in kevents' exposition",
  ignore: !HAVE_PROMTOOL,
  async fn() {
    await pipe("promtool", ["check", "metrics"], await sampleRegistry().metrics());
    await pipe("promtool", ["check", "metrics"], await keventsExposition());
  },
});
