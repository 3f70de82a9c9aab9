/**
 * Specification of the Grafana dashboard (dashboards/kevents.json): Grafana
 * JSON that picks its Prometheus data source from a `${datasource}`
 * variable, whose panels cover what an operator watches, and every metric
 * of whose PromQL a running kevents exports. A collector term runs against
 * the fake API server and delivers an event; its `/metrics` is fetched over
 * HTTP from the health endpoint, compared with the names the panels use,
 * and judged by `promtool check metrics`; every query is parsed by
 * `promtool check rules` (Debian's prometheus package; those steps are
 * skipped, with a message, when promtool is missing). Every series a query
 * or a variable reads is selected by the `$job` variable, whose default is
 * the job the PodMonitor (manifests/monitoring/podmonitor.yaml) gives
 * kevents: `process_*` series are exported by every application.
 */

import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { runCollector } from "../../lib/collector.ts";
import { type Config, parseConfig } from "../../lib/config/mod.ts";
import { startFakeApiServer } from "../../lib/fake_apiserver/mod.ts";
import { KubeClient, PooledKubeConfig } from "../../lib/kube/mod.ts";
import { Metrics, startHealthServer } from "../../lib/ops/mod.ts";
import type { EventRecord, Sink } from "../../lib/sinks/mod.ts";
import { commandSucceeds } from "../_process.ts";
import { coreEvent, eventually, within } from "../_fake_api.ts";
import { metricNames } from "./_promql.ts";

const DASHBOARD = new URL("../../dashboards/kevents.json", import.meta.url);
const PODMONITOR = new URL("../../manifests/monitoring/podmonitor.yaml", import.meta.url);
/** The matcher that keeps a selector to kevents' series. */
const JOB_MATCHER = 'job=~"$job"';
const BOUND_MS = 20_000;
const DATASOURCE = "${datasource}";

const HAVE_PROMTOOL = await commandSucceeds("promtool", ["--version"]);
if (!HAVE_PROMTOOL) {
  console.log(
    "SKIPPED: promtool is not on the PATH (Debian's prometheus package has it); " +
      "dashboard_test's promtool check of the live /metrics needs it",
  );
}

// deno-lint-ignore no-explicit-any
type Json = any;

/**
 * The metric selectors of a PromQL expression that do not filter on
 * {@linkcode JOB_MATCHER}: each name {@linkcode metricNames} finds, at every
 * place it stands, with its label matchers if any.
 */
function selectorsWithoutJob(expr: string): string[] {
  const missing: string[] = [];
  for (const name of metricNames(expr)) {
    const at = new RegExp(`(?<![\\w:])${name}(?![\\w:])(\\s*\\{[^}]*\\})?`, "g");
    for (const m of expr.matchAll(at)) {
      const matchers = (m[1] ?? "").trim().slice(1, -1).split(",").map((x) => x.trim());
      if (!matchers.includes(JOB_MATCHER)) missing.push(m[0]);
    }
  }
  return missing;
}

/** Every panel, those inside rows included. */
function allPanels(panels: Json[]): Json[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** The names a Prometheus exposition exports: its families, and a histogram's series. */
function exportedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(m[1]!);
    if (m[2] === "histogram") {
      for (const suffix of ["_bucket", "_sum", "_count"]) names.add(m[1]! + suffix);
    }
  }
  for (const m of exposition.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/gm)) names.add(m[1]!);
  return names;
}

/** What `names` holds that `exposition` does not export. */
function unexported(exposition: string, names: readonly string[]): string[] {
  const exported = exportedNames(exposition);
  return names.filter((n) => !exported.has(n));
}

/** Accepts every batch. */
class CountingSink implements Sink {
  readonly name = "counting";
  readonly records: EventRecord[] = [];
  send(batch: readonly EventRecord[]): Promise<void> {
    this.records.push(...batch);
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** `/metrics` of one collector term that delivered one event, fetched over HTTP. */
async function liveExposition(): Promise<string> {
  await using server = await startFakeApiServer({ serveComponentStatuses: false });
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig());
  const metrics = new Metrics();
  const client = new KubeClient(kc, { metrics });
  const health = await startHealthServer({
    hostname: "127.0.0.1",
    port: 0,
    ready: () => true,
    metrics: async () => ({ contentType: metrics.contentType, text: await metrics.render() }),
  });
  const parsed = parseConfig({
    env: {
      DD_COLLECT_KUBERNETES_EVENTS: "true",
      KEVENTS_CHECKPOINT_INTERVAL_MS: "50",
      KEVENTS_ENRICH: "false",
    },
  });
  // One term without a lease: enough for every metric of a leader.
  const config: Config = { ...parsed, leaderElection: false };
  const sink = new CountingSink();
  const stop = new AbortController();
  const done = runCollector({ client, config, identity: "a", sinks: [sink], metrics }, stop.signal);
  try {
    await eventually(() => server.watchCount > 0, "the term's watch to open", BOUND_MS);
    server.create("events", "default", coreEvent("default", "web-1.a"));
    await eventually(() => sink.records.length === 1, "the event to be delivered", BOUND_MS);
    const res = await fetch(`http://127.0.0.1:${health.port}/metrics`);
    assert.equal(res.status, 200);
    return await res.text();
  } finally {
    stop.abort(new Error("Test over"));
    await within(done, BOUND_MS, "the collector to stop");
    await health.close();
    await client.close();
  }
}

/** Pipes `text` into `command args`; resolves with its exit status and output. */
async function pipe(
  command: string,
  args: string[],
  text: string,
): Promise<{ success: boolean; output: string }> {
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
  return { success: out.success, output: decode(out.stdout) + decode(out.stderr) };
}

const dashboard: Json = JSON.parse(await Deno.readTextFile(DASHBOARD));
const panels = allPanels(dashboard.panels);
const queryPanels = panels.filter((p) => p.type !== "row");
const exprs: string[] = queryPanels.flatMap((p) => p.targets.map((t: Json) => t.expr));
const variableMetrics = dashboard.templating.list.flatMap((v: Json) =>
  [...JSON.stringify(v.query ?? "").matchAll(/label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)/g)]
    .map((m) => m[1]!)
);
const used = [...new Set([...exprs.flatMap(metricNames), ...variableMetrics])].sort();
/** The PromQL of the query variables' `label_values(...)`. */
const variableQueries: string[] = dashboard.templating.list.flatMap((v: Json) =>
  [...JSON.stringify(v.query ?? "").matchAll(/label_values\((.*?), *\w+\)/g)]
    .map((m) => JSON.parse(`"${m[1]!}"`) as string)
);

Deno.test("the metric extractor finds the names a PromQL expression reads, and nothing else", async (t) => {
  const cases: [string, string, string[]][] = [
    [
      "a histogram quantile over a grouped rate with label matchers and Grafana variables",
      'histogram_quantile(0.99, sum by (sink, le) (rate(kevents_delivery_latency_seconds_bucket{namespace=~"$namespace", sink!="a,b"}[$__rate_interval])))',
      ["kevents_delivery_latency_seconds_bucket"],
    ],
    [
      "a function without arguments and a comparison",
      'time() - max(kevents_checkpoint_last_write_timestamp_seconds{pod="x"} > 0)',
      ["kevents_checkpoint_last_write_timestamp_seconds"],
    ],
    [
      "vector matching and an offset",
      "a_total / on(pod) group_left(sink) b_info offset 1h30m",
      ["a_total", "b_info"],
    ],
    ["a trailing by clause and bool", "max(x) by (pod) > bool 0.5e3", ["x"]],
    ["a subquery", 'rate(kevents_bogus_total{le="0.5"}[5m:1m])', ["kevents_bogus_total"]],
    ["set operators", "sum without (instance) (up) and on() vector(1)", ["up"]],
    ["strings with parentheses", 'label_replace(y, "dst", "$1", "src", "(.*)")', ["y"]],
    ["a metric twice", "count(kevents_leader == 1) or absent(kevents_leader)", ["kevents_leader"]],
  ];
  for (const [name, expr, expected] of cases) {
    await t.step(name, () => assert.deepEqual(metricNames(expr), expected, expr));
  }
});

Deno.test("the dashboard is Grafana JSON that takes its Prometheus data source from ${datasource}", () => {
  assert.ok(dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41, "schemaVersion");
  const variable = dashboard.templating.list.find((v: Json) => v.name === "datasource");
  assert.deepEqual([variable?.type, variable?.query], ["datasource", "prometheus"]);
  const ids = panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
  assert.ok(queryPanels.length >= 10, `only ${queryPanels.length} panels`);
  for (const p of queryPanels) {
    assert.deepEqual(p.datasource, { type: "prometheus", uid: DATASOURCE }, p.title);
    assert.ok(p.targets.length > 0, `${p.title} has no query`);
    for (const target of p.targets) {
      assert.deepEqual(target.datasource, { type: "prometheus", uid: DATASOURCE }, p.title);
      assert.ok(metricNames(target.expr).length > 0, `${p.title}: ${target.expr}`);
    }
  }
  // No data source named by uid anywhere, but Grafana's built-in annotations.
  const uids = [...JSON.stringify(dashboard).matchAll(/"uid":"([^"]*)"/g)].map((m) => m[1]);
  assert.deepEqual(
    [...new Set(uids)].sort(),
    ["-- Grafana --", DATASOURCE, dashboard.uid].sort(),
  );
});

Deno.test("the dashboard shows leadership, events in and out, sink failures, latency, queue, checkpoint lag vs limit, API requests and memory", () => {
  for (
    const name of [
      "kevents_leader",
      "kevents_leader_transitions",
      "kevents_events_received_total",
      "kevents_events_delivered_total",
      "kevents_events_dropped_total",
      "kevents_sink_rejected_events_total",
      "kevents_sink_errors_total",
      "kevents_delivery_latency_seconds_bucket",
      "kevents_queue_depth",
      "kevents_checkpoint_lag_seconds",
      "kevents_checkpoint_lag_limit_seconds",
      "kevents_event_ttl_seconds",
      "kevents_checkpoint_last_write_timestamp_seconds",
      "kevents_api_requests_total",
      "process_resident_memory_bytes",
    ]
  ) {
    assert.ok(used.includes(name), `no panel reads ${name}`);
  }
});

Deno.test("every query and variable of the dashboard selects kevents' job only, by default the PodMonitor's", async (t) => {
  await t.step("the selector check finds a series read without the job", () => {
    assert.deepEqual(
      selectorsWithoutJob('process_resident_memory_bytes{namespace=~"$namespace"}'),
      ['process_resident_memory_bytes{namespace=~"$namespace"}'],
    );
    assert.deepEqual(
      selectorsWithoutJob(
        'sum(rate(kevents_a_total{job=~"$job"}[5m])) / on() kevents_b + kevents_a_total',
      ),
      ["kevents_a_total", "kevents_b"],
    );
    assert.deepEqual(selectorsWithoutJob('max(up{pod="x", job=~"$job"}) by (job)'), []);
  });

  await t.step("every panel's query", () => {
    assert.ok(exprs.length >= 20, `only ${exprs.length} queries`);
    assert.deepEqual(exprs.flatMap(selectorsWithoutJob), []);
  });

  await t.step("every query variable's label_values", () => {
    assert.ok(variableQueries.length >= 1, "no label_values variable");
    assert.deepEqual(variableQueries.flatMap(selectorsWithoutJob), []);
  });

  await t.step(
    "$job is a variable whose default is the job the PodMonitor gives kevents",
    async () => {
      const podMonitor = parseYaml(await Deno.readTextFile(PODMONITOR));
      const jobLabel: string = podMonitor.spec.jobLabel;
      const job = podMonitor.spec.selector.matchLabels[jobLabel];
      assert.equal(job, "kevents");
      const variable = dashboard.templating.list.find((v: Json) => v.name === "job");
      assert.ok(variable !== undefined, "no job variable");
      assert.equal(variable.current?.value, job);
      assert.equal(variable.query, job);
      // Before the variables that read series: those select the job too.
      const names = dashboard.templating.list.map((v: Json) => v.name);
      assert.ok(names.indexOf("job") < names.indexOf("namespace"), names.join(", "));
    },
  );
});

Deno.test({
  name: "every query of the dashboard is PromQL that promtool parses, its variables filled in",
  ignore: !HAVE_PROMTOOL,
  async fn() {
    const filled = (expr: string) =>
      expr.replaceAll("$__rate_interval", "5m").replaceAll("$namespace", ".*")
        .replaceAll("$job", "kevents");
    const rules = (queries: string[]) =>
      "groups:\n  - name: dashboard\n    rules:\n" +
      queries.map((q, i) =>
        `      - record: dashboard:query${i}\n        expr: ${JSON.stringify(q)}\n`
      )
        .join("");
    const dir = await Deno.makeTempDir();
    try {
      const good = `${dir}/dashboard.rules.yaml`;
      await Deno.writeTextFile(good, rules(exprs.map(filled)));
      const checked = await pipe("promtool", ["check", "rules", good], "");
      assert.ok(checked.success, checked.output);
      assert.match(checked.output, new RegExp(`SUCCESS: ${exprs.length} rules found`));
      // The judge can fail: an unbalanced parenthesis is refused.
      const bad = `${dir}/bad.rules.yaml`;
      await Deno.writeTextFile(bad, rules(["sum(rate(kevents_queue_depth[5m])"]));
      assert.ok(!(await pipe("promtool", ["check", "rules", bad], "")).success);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("every metric the dashboard reads is exported by a running kevents, whose /metrics promtool accepts", async (t) => {
  const exposition = await liveExposition();

  await t.step("every name of every panel's query and of the variables", () => {
    assert.ok(used.length >= 20, `only ${used.length} metric names found`);
    assert.deepEqual(unexported(exposition, used), []);
  });

  await t.step("a name kevents does not export is caught", () => {
    const bogus = metricNames('rate(kevents_bogus_total{sink="x"}[5m]) / kevents_queue_depth');
    assert.deepEqual(unexported(exposition, bogus), ["kevents_bogus_total"]);
    // A histogram's series exist, the family's bare name as well, but no other suffix.
    assert.deepEqual(
      unexported(exposition, [
        "kevents_delivery_latency_seconds_count",
        "kevents_delivery_latency_seconds_total",
      ]),
      ["kevents_delivery_latency_seconds_total"],
    );
  });

  await t.step({
    name: "promtool check metrics finds no problem",
    ignore: !HAVE_PROMTOOL,
    fn: async () => {
      const checked = await pipe("promtool", ["check", "metrics"], exposition);
      assert.ok(checked.success, checked.output);
      // The judge can fail: a counter without _total is reported.
      const bad = await pipe(
        "promtool",
        ["check", "metrics"],
        "# HELP x X\n# TYPE x counter\nx 1\n",
      );
      assert.ok(!bad.success, "promtool accepted a counter without _total");
      assert.match(bad.output, /should have "_total" suffix/);
    },
  });
});
