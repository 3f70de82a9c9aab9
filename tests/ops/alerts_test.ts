/**
 * Specification of kevents' alerting rules (manifests/monitoring/,
 * docs/OPERATIONS.md): promtool accepts them and passes their unit tests
 * (tests/ops/alerts/*.test.yaml, where every alert fires in one case and
 * stays silent in others), and would fail them were a rule or an
 * expectation wrong; the PrometheusRule that kustomize renders holds the
 * same groups as the plain rules file; every rule reads only metrics
 * kevents exports and links a runbook section that exists. Also the metrics
 * the rules added, scraped over HTTP from a replica running against the fake
 * API server: what it saw of the leader's renewals, and its settings.
 *
 * promtool (Debian's prometheus package) and kubectl are skipped, with a
 * message, when missing.
 */

import assert from "node:assert/strict";
import { parse, parseAllDocuments, stringify } from "yaml";
import { runCollector } from "../../lib/collector.ts";
import { parseConfig } from "../../lib/config/mod.ts";
import { type LeaderElectionRecord, LeaseLock } from "../../lib/election/mod.ts";
import { microTime } from "../../lib/election/lease_lock.ts";
import { startFakeApiServer } from "../../lib/fake_apiserver/mod.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import { startHealthServer } from "../../lib/ops/health_server.ts";
import { Liveness } from "../../lib/ops/liveness.ts";
import { Metrics } from "../../lib/ops/metrics.ts";
import { NullSink } from "../../lib/sinks/null.ts";
import { eventually, type Json } from "../_fake_api.ts";
import { commandSucceeds } from "../_process.ts";
import { metricNames } from "./_promql.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
const MONITORING = `${ROOT}manifests/monitoring`;
const RULES = `${MONITORING}/kevents-rules.yaml`;
const PROMETHEUS_RULE = `${MONITORING}/prometheusrule.yaml`;
const UNIT_TESTS = `${ROOT}tests/ops/alerts`;
const OPERATIONS = `${ROOT}docs/OPERATIONS.md`;
const BOUND_MS = 20_000;

const HAVE_PROMTOOL = await commandSucceeds("promtool", ["--version"]);
if (!HAVE_PROMTOOL) {
  console.log(
    "SKIPPED: promtool is not on the PATH (Debian's prometheus package has it); " +
      "alerts_test's promtool checks and unit tests need it",
  );
}
const HAVE_KUBECTL = await commandSucceeds("kubectl", ["version", "--client"]);
if (!HAVE_KUBECTL) {
  console.log("SKIPPED: kubectl is not on the PATH; alerts_test's kustomize build needs it");
}

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** The rules file's groups, and its rules. */
function readRules(): { groups: Json[]; rules: Rule[] } {
  const groups = parse(Deno.readTextFileSync(RULES)).groups as Json[];
  return { groups, rules: groups.flatMap((g) => g.rules as Rule[]) };
}

/** The promtool unit test files, sorted. */
function unitTestFiles(): string[] {
  return Array.from(Deno.readDirSync(UNIT_TESTS))
    .filter((e) => e.isFile && e.name.endsWith(".test.yaml"))
    .map((e) => `${UNIT_TESTS}/${e.name}`)
    .sort();
}

/** Runs a command in the repository; its exit status and its output, stdout then stderr. */
async function run(command: string, args: string[]): Promise<{ ok: boolean; output: string }> {
  const out = await new Deno.Command(command, { args, cwd: ROOT, stdout: "piped", stderr: "piped" })
    .output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { ok: out.success, output: decode(out.stdout) + decode(out.stderr) };
}

Deno.test({
  name: "promtool check rules accepts every rule of kevents-rules.yaml",
  ignore: !HAVE_PROMTOOL,
  async fn() {
    const { ok, output } = await run("promtool", ["check", "rules", RULES]);
    assert.ok(ok, output);
    assert.match(output, new RegExp(`SUCCESS: ${readRules().rules.length} rules found`));
  },
});

Deno.test({
  name: "promtool test rules passes every alert's unit tests",
  ignore: !HAVE_PROMTOOL,
  async fn() {
    const files = unitTestFiles();
    const { ok, output } = await run("promtool", ["test", "rules", ...files]);
    assert.ok(ok, output);
    assert.equal(output.match(/^\s+SUCCESS$/gm)?.length, files.length, output);
  },
});

Deno.test("every alert has a unit test where it fires and one where it must not", () => {
  const firing = new Set<string>();
  const silent = new Set<string>();
  for (const file of unitTestFiles()) {
    const doc = parse(Deno.readTextFileSync(file));
    const ruleFiles = (doc.rule_files as string[]).map((f) =>
      decodeURIComponent(new URL(f, `file://${file}`).pathname)
    );
    assert.deepEqual(ruleFiles, [RULES], `${file} tests kevents-rules.yaml`);
    for (const test of doc.tests as Json[]) {
      for (const expectation of test.alert_rule_test as Json[]) {
        const fires = (expectation.exp_alerts ?? []).length > 0;
        (fires ? firing : silent).add(expectation.alertname);
      }
    }
  }
  const alerts = readRules().rules.map((r) => r.alert).sort();
  assert.deepEqual([...firing].sort(), alerts, "alerts with a firing case");
  assert.deepEqual([...silent].sort(), alerts, "alerts with a silent case");
});

/** A unit test file rewritten to test `rules` (absolute), after `edit`, in `dir`. */
function rewrittenTest(dir: string, source: string, rules: string, edit: (doc: Json) => void) {
  const doc = parse(Deno.readTextFileSync(`${UNIT_TESTS}/${source}`));
  doc.rule_files = [rules];
  edit(doc);
  const path = `${dir}/${source}`;
  Deno.writeTextFileSync(path, stringify(doc));
  return path;
}

/** The test named `name` of a unit test file. */
function testNamed(doc: Json, name: string): Json {
  const test = (doc.tests as Json[]).find((t) => t.name === name);
  assert.ok(test !== undefined, `a unit test named "${name}"`);
  return test;
}

Deno.test({
  name: "promtool test rules fails on a wrong expectation and on a wrong rule",
  ignore: !HAVE_PROMTOOL,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "kevents-alerts-" });
    try {
      const original = Deno.readTextFileSync(RULES);
      await t.step("an expectation that a firing alert stays silent", async () => {
        const name = "replicas alive but nobody renews for longer than two leases fires";
        const file = rewrittenTest(dir, "leader.test.yaml", RULES, (doc) => {
          const at13m = (testNamed(doc, name).alert_rule_test as Json[])
            .find((e) => e.eval_time === "13m");
          delete at13m.exp_alerts;
        });
        const { ok, output } = await run("promtool", ["test", "rules", file]);
        assert.ok(!ok, output);
        assert.match(output, new RegExp(`FAILED:\\s+name: ${name},\\s+alertname: KeventsNoLeader`));
      });
      // Each rule broken as it could plausibly be written, and the unit test that catches it.
      const mutants = [
        {
          what: "no leader after one lease instead of two",
          from: "> 2 * max by (namespace, job) (kevents_lease_duration_seconds)",
          to: "> max by (namespace, job) (kevents_lease_duration_seconds)",
          file: "leader.test.yaml",
          failing: "replicas alive but nobody renews for longer than two leases fires",
        },
        {
          what: "a replica that never saw a leader counted from its last start",
          from: "min_over_time(process_start_time_seconds[1h])",
          to: "process_start_time_seconds",
          file: "leader.test.yaml",
          failing: "replicas that crash in a loop before they lead fire NoLeader and Restarting",
        },
        {
          what: "a stalled watch judged on a leader that has just taken over",
          from: "and min_over_time(kevents_leader[2m]) == 1",
          to: "and kevents_leader == 1",
          file: "watch_checkpoint.test.yaml",
          failing:
            "a new leader's first list, after its previous term's old activity, does not fire",
        },
        {
          what: "drops counted by increase() alone, blind to a new series",
          from: "last_over_time(kevents_events_dropped_total[1h] offset 10m)",
          to: "last_over_time(kevents_events_dropped_total[1h])",
          file: "sinks.test.yaml",
          failing:
            "a process's first drops fire at once (the series is new), and stop after 10 minutes",
        },
        {
          what: "first drops judged by the one sample 10 minutes ago, blind to a failed scrape",
          from: "last_over_time(kevents_events_dropped_total[1h] offset 10m)",
          to: "kevents_events_dropped_total offset 10m",
          file: "sinks.test.yaml",
          failing: "old counts stay old across a failed scrape or a gap in Prometheus' data",
        },
        {
          what: "first drops told by the series alone, blind to a restarted process's",
          from: [
            "                unless",
            "                last_over_time(",
            "                  (",
            "                    kevents_events_dropped_total * 0",
            "                    + on (namespace, job, pod) group_left process_start_time_seconds",
            "                  )[1h:1m] offset 10m",
            "                )",
            "                != on (namespace, job, pod) group_left",
            "                process_start_time_seconds",
            "",
          ].join("\n"),
          to: "",
          file: "sinks.test.yaml",
          failing:
            "a restarted process's first drops and rejections count whole, however late they come",
        },
        {
          what: "no leader ever seen counted from the newest replica's start",
          from: "min by (namespace, job) (",
          to: "max by (namespace, job) (",
          file: "leader.test.yaml",
          failing: "a new replica does not clear the alert of a deployment that never had a leader",
        },
      ];
      for (const m of mutants) {
        await t.step(`a rule with ${m.what}`, async () => {
          assert.equal(original.split(m.from).length, 2, `"${m.from}" once in the rules`);
          const rules = `${dir}/mutant-rules.yaml`;
          Deno.writeTextFileSync(rules, original.replace(m.from, m.to));
          assert.ok((await run("promtool", ["check", "rules", rules])).ok, "the mutant is valid");
          const file = rewrittenTest(dir, m.file, rules, () => {});
          const { ok, output } = await run("promtool", ["test", "rules", file]);
          assert.ok(!ok, output);
          assert.ok(output.includes(`name: ${m.failing},`), output);
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("prometheusrule.yaml holds exactly the groups of kevents-rules.yaml", () => {
  const [rule] = parseAllDocuments(Deno.readTextFileSync(PROMETHEUS_RULE)).map((d) => d.toJS());
  assert.equal(rule.apiVersion, "monitoring.coreos.com/v1");
  assert.equal(rule.kind, "PrometheusRule");
  assert.deepEqual(
    rule.spec.groups,
    readRules().groups,
    "prometheusrule.yaml differs from kevents-rules.yaml: copy the rules file's groups " +
      "under its spec",
  );
});

Deno.test({
  name: "kubectl kustomize renders the PodMonitor and the PrometheusRule of the rules file",
  ignore: !HAVE_KUBECTL,
  async fn() {
    const { ok, output } = await run("kubectl", ["kustomize", MONITORING]);
    assert.ok(ok, output);
    const docs = parseAllDocuments(output).map((d) => d.toJS());
    assert.deepEqual(docs.map((d) => d.kind).sort(), ["PodMonitor", "PrometheusRule"]);
    const rule = docs.find((d) => d.kind === "PrometheusRule");
    assert.deepEqual(rule.spec.groups, readRules().groups);
  },
});

Deno.test("the PodMonitor scrapes both workloads' pods on their health port as the job KeventsDown names", () => {
  const monitor = parse(Deno.readTextFileSync(`${MONITORING}/podmonitor.yaml`));
  const down = readRules().rules.find((r) => r.alert === "KeventsDown")!;
  const job = /up\{job="([^"]+)"\}/.exec(down.expr)?.[1];
  assert.equal(job, "kevents");
  for (const file of ["cluster-collector.yaml", "agent.yaml"]) {
    const workload = parse(Deno.readTextFileSync(`${ROOT}manifests/${file}`));
    const labels = workload.spec.template.metadata.labels as Record<string, string>;
    for (const [k, v] of Object.entries(monitor.spec.selector.matchLabels)) {
      assert.equal(labels[k], v, `${file}: the pods carry ${k}: ${v}`);
    }
    assert.equal(labels[monitor.spec.jobLabel], job, `${file}: the job label's value`);
    const ports = (workload.spec.template.spec.containers as Json[]).flatMap((c) => c.ports ?? []);
    for (const endpoint of monitor.spec.podMetricsEndpoints as Json[]) {
      const port = ports.find((p: Json) => p.name === endpoint.port);
      assert.equal(
        port?.containerPort,
        5555,
        `${file}: the port ${endpoint.port} is the health port`,
      );
      assert.equal(endpoint.path, "/metrics");
    }
  }
});

/** GitHub's anchor of a Markdown heading: lower case, spaces to dashes, punctuation dropped. */
function anchor(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^a-z0-9 _-]/g, "").replace(/ /g, "-");
}

Deno.test("every alert has a severity, a summary, a description and a runbook section of its own", () => {
  const sections = [...Deno.readTextFileSync(OPERATIONS).matchAll(/^### (.+)$/gm)]
    .map((m) => anchor(m[1]!));
  const { rules } = readRules();
  for (const r of rules) {
    assert.ok(["critical", "warning"].includes(r.labels?.severity ?? ""), `${r.alert}: severity`);
    assert.ok((r.annotations?.summary ?? "").length > 0, `${r.alert}: summary`);
    assert.ok((r.annotations?.description ?? "").length > 0, `${r.alert}: description`);
    const url = r.annotations?.runbook_url ?? "";
    assert.equal(url, `docs/OPERATIONS.md#${anchor(r.alert)}`, `${r.alert}: runbook_url`);
    assert.ok(sections.includes(anchor(r.alert)), `${r.alert}: a section in docs/OPERATIONS.md`);
  }
  assert.deepEqual(sections.sort(), rules.map((r) => anchor(r.alert)).sort(), "no stray section");
});

Deno.test("every metric the rules read is one kevents exports on /metrics", async () => {
  const metrics = new Metrics();
  const health = await startHealthServer({
    hostname: "127.0.0.1",
    port: 0,
    ready: () => true,
    metrics: async () => ({ contentType: metrics.contentType, text: await metrics.render() }),
  });
  let text;
  try {
    const res = await fetch(`http://127.0.0.1:${health.port}/metrics`);
    assert.equal(res.status, 200);
    text = await res.text();
  } finally {
    await health.close();
  }
  const exported = new Set<string>();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    exported.add(name!);
    if (type === "histogram") {
      for (const s of ["_bucket", "_sum", "_count"]) exported.add(name + s);
    }
  }
  const read = new Set(readRules().rules.flatMap((r) => metricNames(r.expr)));
  // The extraction finds what the rules are known to read: it is not vacuous.
  for (const known of ["kevents_leader", "process_start_time_seconds", "up"]) {
    assert.ok(read.has(known), `the rules read ${known}`);
  }
  // `up` is Prometheus' own, for every target.
  const missing = [...read].filter((n) => n !== "up" && !exported.has(n));
  assert.deepEqual(missing, [], "metrics the rules read that kevents does not export");
});

/** A Prometheus text exposition's sample `name` without labels; fails when absent. */
function gauge(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  assert.ok(m !== null, `${name} in /metrics`);
  return Number(m[1]);
}

Deno.test("a follower exports when it last saw the lock renewed: not at first sight, at each renewal it watches, now once it leads", async (t) => {
  await using server = await startFakeApiServer({ serveComponentStatuses: false });
  const clientOf = (user: string) => {
    server.addUser(user);
    const kc = new PooledKubeConfig();
    kc.loadFromString(server.kubeconfig({ user }));
    return new KubeClient(kc);
  };
  const config = parseConfig({
    env: {
      DD_COLLECT_KUBERNETES_EVENTS: "true",
      DD_LEADER_LEASE_DURATION: "45",
      KEVENTS_WATCH_STALL_LIMIT_SECONDS: "120",
    },
  });
  // The test is the leader "other": it holds the Lease through the API as any client would.
  const otherClient = clientOf("other");
  const other = new LeaseLock(otherClient, {
    namespace: config.resourcesNamespace,
    name: config.leaseName,
  });
  const record = (holderIdentity: string): LeaderElectionRecord => ({
    holderIdentity,
    leaseDurationSeconds: 45,
    acquireTime: microTime(Date.now()),
    renewTime: microTime(Date.now()),
    leaderTransitions: 0,
  });
  assert.equal(await other.get(), undefined);
  await other.create(record("other"));

  const client = clientOf("b");
  const metrics = new Metrics();
  const health = await startHealthServer({
    hostname: "127.0.0.1",
    port: 0,
    ready: () => true,
    metrics: async () => ({ contentType: metrics.contentType, text: await metrics.render() }),
  });
  const scrape = async () => {
    const res = await fetch(`http://127.0.0.1:${health.port}/metrics`);
    assert.equal(res.status, 200);
    return await res.text();
  };
  const stop = new AbortController();
  const done = runCollector({
    client,
    config,
    identity: "b",
    sinks: [new NullSink()],
    metrics,
    liveness: new Liveness(),
  }, stop.signal);
  try {
    await t.step("its settings, and nothing seen at first sight of a held lock", async () => {
      // b read the Lease (held, fresh) and watches it now.
      await eventually(() => server.watchIdentities().includes("b"), "b's watch of the lock");
      const text = await scrape();
      assert.equal(gauge(text, "kevents_lease_duration_seconds"), 45);
      assert.equal(gauge(text, "kevents_watch_stall_limit_seconds"), 120);
      assert.equal(gauge(text, "kevents_leader"), 0);
      assert.equal(gauge(text, "kevents_lease_observed_renew_timestamp_seconds"), 0);
    });

    await t.step("each renewal it watches, when it saw it", async () => {
      for (let i = 0; i < 2; i++) {
        const before = Date.now() / 1000;
        await other.get();
        await other.update(record("other"));
        let seen = 0;
        await pollUntil(async () => {
          seen = gauge(await scrape(), "kevents_lease_observed_renew_timestamp_seconds");
          return seen >= before;
        }, `b to see renewal ${i + 1}`);
        assert.ok(seen <= Date.now() / 1000, `${seen} is not in the future`);
        assert.equal(gauge(await scrape(), "kevents_leader"), 0);
      }
    });

    await t.step("now, at every scrape, once it leads", async () => {
      await other.get();
      await other.update({ ...record(""), leaseDurationSeconds: 1 });
      await pollUntil(async () => gauge(await scrape(), "kevents_leader") === 1, "b to lead");
      const before = Date.now() / 1000;
      const text = await scrape();
      const after = Date.now() / 1000;
      const seen = gauge(text, "kevents_lease_observed_renew_timestamp_seconds");
      assert.ok(before <= seen && seen <= after, `${before} <= ${seen} <= ${after}`);
    });
  } finally {
    stop.abort(new Error("Test over"));
    await done.catch(() => {});
    await health.close();
    await client.close();
    await otherClient.close();
  }
});

/** Re-checks an async condition every few ms until it holds (bounded). */
async function pollUntil(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + BOUND_MS;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
