/**
 * Specification of what kevents does with bad input: a broken or odd
 * `datadog.yaml`, every setting given an empty, non-numeric, negative or
 * out-of-range value, a token ConfigMap holding garbage, a huge value or a
 * time in the future, and kubeconfigs that are missing, unreadable, without
 * a current context, with an authentication kevents cannot keep up, or
 * naming a server nobody answers on.
 *
 * The rule throughout: a mistake in the configuration stops the start with
 * exit code 2 and one message naming the file or setting, the value and the
 * rule, before any request; a mistake in the cluster's data (the token) is
 * logged and worked around without losing what happens after the start; an
 * unreachable server is retried, with backoff, for as long as it takes.
 *
 * Each case prints one `BADINPUT <case>: <outcome>` line for the report in
 * docs/RELIABILITY.md.
 */

import assert from "node:assert/strict";
import type { CoreV1Event } from "@kubernetes/client-node";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import YAML from "yaml";
import {
  type Token,
  TOKEN_KEY,
  TOKEN_TIME_SKEW_MS,
  TOKEN_TIMESTAMP,
  tokenFromData,
} from "../lib/checkpoint/checkpointer.ts";
import { runTerm } from "../lib/collector.ts";
import { type AnyKeySpec, CONFIG_KEYS, ConfigError, parseConfig } from "../lib/config/mod.ts";
import {
  type FakeApiServer,
  formatTime,
  type KubeObject,
  startFakeApiServer,
} from "../lib/fake_apiserver/mod.ts";
import { KubeClient } from "../lib/kube/client.ts";
import { PooledKubeConfig } from "../lib/kube/kubeconfig.ts";
import { isNewer } from "../lib/pump/pump.ts";
import type { EventRecord, Sink } from "../lib/sinks/sink.ts";
import type { Json } from "./_fake_api.ts";
import { KeventsProcess, runMain, withTempDir } from "./_process.ts";

const PATH = "/etc/datadog-agent/datadog.yaml";
/** Bound of every wait: generous, for a loaded 2-core machine. */
const BOUND_MS = 30_000;

/** One line of the report table. */
function report(name: string, outcome: string): void {
  console.log(`BADINPUT ${name}: ${outcome}`);
}

/** parseConfig with `text` as datadog.yaml (at PATH) and `env`. */
function withFile(text: string, env: Record<string, string> = {}) {
  return parseConfig({ env, file: { path: PATH, text } });
}

/** The ConfigError `fn` throws; fails when it throws nothing or something else. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
    return e;
  }
  assert.fail("no ConfigError was thrown");
}

// ---- datadog.yaml ------------------------------------------------------------------

Deno.test("datadog.yaml: a syntax error names the file, the line and the column", async (t) => {
  const cases: { name: string; text: string; line: number; column: number; detail: RegExp }[] = [
    {
      name: "an unclosed flow list",
      text:
        "collect_kubernetes_events: true\nkevents_sinks: [stdout, null\nleader_election: true\n",
      line: 3,
      column: 1,
      detail: /Flow sequence .* end with a \]/,
    },
    {
      name: "a key indented under a scalar",
      text: "collect_kubernetes_events: true\n  leader_election: true\n",
      line: 1,
      column: 28,
      detail: /Nested mappings are not allowed/,
    },
    {
      name: "a tab as indentation",
      text: "collect_kubernetes_events: true\n\tleader_election: true\n",
      line: 2,
      column: 1,
      detail: /Tabs are not allowed as indentation/,
    },
    {
      name: "an unterminated quote",
      text: "leader_lease_name: 'abc\n",
      line: 2,
      column: 1,
      detail: /Missing closing 'quote/,
    },
    {
      name: "a key written twice",
      text: "leader_election: true\nleader_election: false\n",
      line: 2,
      column: 1,
      detail: /Map keys must be unique/,
    },
    {
      name: "two YAML documents",
      text: "collect_kubernetes_events: true\n---\nleader_election: true\n",
      line: 2,
      column: 1,
      detail: /multiple documents/,
    },
    {
      name: "an alias without its anchor",
      text: "api_key: x\nleader_lease_duration: *lease\n",
      line: 2,
      column: 24,
      detail: /alias \*lease names no anchor &lease/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const e = configError(() => withFile(c.text));
      assert.equal(e.key, "");
      assert.equal(e.source, `${PATH} line ${c.line}, column ${c.column}`);
      assert.match(e.message, new RegExp(`^Cannot parse ${PATH}: YAML `));
      assert.match(e.message, new RegExp(`at line ${c.line}, column ${c.column}: `));
      assert.match(e.message, c.detail);
      assert.doesNotMatch(e.message, /\n/, "one line");
      report(`datadog.yaml ${c.name}`, `refused, exit 2: "${e.message}"`);
    });
  }
});

/** Whether a row holds a list (kevents_sinks, the filter lists). */
const isListRow = (spec: AnyKeySpec) => Array.isArray(spec.default);

Deno.test("datadog.yaml: a value of the wrong YAML type is refused naming the key, its line and the rule", async (t) => {
  const shapes: { name: string; yaml: string; refusedBy: (spec: AnyKeySpec) => boolean }[] = [
    {
      name: "a mapping",
      yaml: "\n  first: one\n  second: two",
      refusedBy: (spec) => spec.fileMapping !== true,
    },
    { name: "a list of lists", yaml: " [[a], [b]]", refusedBy: () => true },
    { name: "a list of mappings", yaml: "\n  - a: 1\n  - b: 2", refusedBy: () => true },
    { name: "a list", yaml: " [alpha, beta]", refusedBy: (spec) => !isListRow(spec) },
  ];
  for (const shape of shapes) {
    await t.step(`${shape.name} where a setting expects something else`, () => {
      const refused: string[] = [];
      for (const spec of CONFIG_KEYS.filter(shape.refusedBy)) {
        // Line 2, after an unrelated Agent setting.
        const e = configError(() => withFile(`hostname: node-1\n${spec.fileKey}:${shape.yaml}\n`));
        assert.equal(e.key, spec.fileKey);
        assert.equal(e.source, `${PATH} line 2`);
        assert.equal(e.rule, spec.rule);
        assert.ok(
          e.message.startsWith(`Cannot parse ${spec.fileKey} `) &&
            e.message.endsWith(`(${PATH} line 2): ${spec.rule}`),
          e.message,
        );
        refused.push(spec.fileKey);
      }
      assert.ok(refused.length > 0);
      report(
        `datadog.yaml ${shape.name} where ${refused.length} settings expect something else`,
        "refused, exit 2, naming key, line and rule",
      );
    });
  }

  await t.step("a mapping is taken where a setting takes one (webhook headers)", () => {
    const config = withFile("kevents_webhook_headers:\n  X-Team: ops\n  X-Env: prod\n");
    assert.deepEqual(config.webhook.headers, { "X-Team": "ops", "X-Env": "prod" });
  });
});

Deno.test("datadog.yaml: an unknown key is reported only when it is likely meant for kevents", async (t) => {
  await t.step(
    "a misspelt kevents setting gets a warning with a suggestion, and sets nothing",
    () => {
      const config = withFile(
        "# kevents\napi_key: abcdef0123456789\ncolect_kubernetes_events: true\n",
      );
      assert.deepEqual(config.warnings, [
        `Unknown setting colect_kubernetes_events (${PATH} line 3) is ignored: did you mean ` +
        "collect_kubernetes_events?",
      ]);
      assert.equal(config.collectEvents, false, "the misspelt setting is not applied");
      report(
        "datadog.yaml unknown key colect_kubernetes_events",
        "starts with a warning: did you mean collect_kubernetes_events?",
      );
    },
  );

  await t.step(
    "every kevents setting with a letter missing, doubled or swapped is suggested back",
    () => {
      const known = new Set(CONFIG_KEYS.map((s) => s.fileKey));
      let tried = 0;
      for (const spec of CONFIG_KEYS) {
        const key = spec.fileKey;
        const mid = Math.floor(key.length / 2);
        const typos = [
          key.slice(0, mid) + key.slice(mid + 1),
          key.slice(0, mid) + key[mid] + key.slice(mid),
          key.slice(0, mid - 1) + key[mid] + key[mid - 1] + key.slice(mid + 1),
        ].filter((typo) => typo !== key && !known.has(typo));
        for (const typo of typos) {
          tried++;
          const warnings = withFile(`${typo}: x\n`).warnings;
          assert.deepEqual(
            warnings,
            [`Unknown setting ${typo} (${PATH} line 1) is ignored: did you mean ${key}?`],
            typo,
          );
        }
      }
      report(
        `datadog.yaml ${tried} one-letter typos of every kevents setting`,
        "each warned with the right did-you-mean",
      );
    },
  );

  await t.step("keys match case-insensitively, so a typo in capitals is suggested too", () => {
    assert.deepEqual(withFile("Leader_Lease_Duraton: 45\n").warnings, [
      `Unknown setting leader_lease_duraton (${PATH} line 1) is ignored: did you mean ` +
      "leader_lease_duration?",
    ]);
  });

  await t.step("an unknown kevents_ key is reported even when nothing is close", () => {
    assert.deepEqual(withFile("kevents_turbo_mode: true\n").warnings, [
      `Unknown setting kevents_turbo_mode (${PATH} line 1) is ignored: kevents has no such ` +
      "setting (the README's Settings table lists them)",
    ]);
    report("datadog.yaml unknown key kevents_turbo_mode", "starts with a warning naming it");
  });

  await t.step("the Agent's own settings in a shared datadog.yaml give no warning", () => {
    const agent = [
      "api_key: 0123456789abcdef0123456789abcdef",
      "app_key: 0123456789abcdef0123456789abcdef01234567",
      "site: datadoghq.eu",
      "dd_url: https://app.datadoghq.eu",
      "hostname: node-1",
      "hostname_fqdn: false",
      "host_aliases: [a]",
      "tags: [team:infra]",
      "extra_tags: [region:north]",
      "env: prod",
      "cluster_name: prod-eu",
      "log_level: info",
      "logs_enabled: true",
      "logs_config:\n  container_collect_all: true",
      "apm_config:\n  enabled: true",
      "process_config:\n  enabled: 'true'",
      "proxy:\n  https: http://proxy:3128",
      "skip_ssl_validation: false",
      "min_tls_version: tlsv1.2",
      "forwarder_timeout: 20",
      "forwarder_num_workers: 1",
      "cloud_provider_metadata: [aws]",
      "collect_ec2_tags: false",
      "collect_gce_tags: true",
      "checks_tag_cardinality: low",
      "dogstatsd_tag_cardinality: low",
      "histogram_aggregates: [max]",
      "cmd_port: 5001",
      "expvar_port: 5000",
      "health_port: 5555",
      "use_dogstatsd: true",
      "dogstatsd_port: 8125",
      "cluster_agent:\n  enabled: true",
      "cluster_checks:\n  enabled: true",
      "kubelet_tls_verify: false",
      "kubernetes_kubelet_host: 10.0.0.1",
      "kubernetes_event_collection_timeout: 100",
      "kube_cache_sync_timeout_seconds: 5",
      "leader_election_release_on_shutdown: true",
      "orchestrator_explorer:\n  enabled: true",
      "admission_controller:\n  enabled: false",
      "external_metrics_provider:\n  enabled: false",
      "compliance_config:\n  enabled: false",
      "secret_backend_command: /readsecret.sh",
      "inventories_configuration_enabled: true",
    ];
    const config = withFile(`${agent.join("\n")}\ncollect_kubernetes_events: true\n`);
    assert.deepEqual(config.warnings, []);
    assert.equal(config.collectEvents, true);
    assert.equal(config.datadog.site, "datadoghq.eu");
    report(
      `datadog.yaml ${agent.length} Agent settings kevents does not read`,
      "ignored without a warning",
    );
  });
});

Deno.test("datadog.yaml: an empty file, or one of comments only, gives the defaults", async (t) => {
  const defaults = parseConfig({ env: {} });
  const files: [string, string][] = [
    ["an empty file", ""],
    ["a file of blank lines", "\n\n  \n"],
    ["a file of comments only", "# datadog.yaml\n# collect_kubernetes_events: true\n"],
    ["a lone document marker", "---\n"],
    ["a null document", "~\n"],
    ["a byte-order mark", "\ufeff"],
  ];
  for (const [name, text] of files) {
    await t.step(name, () => {
      assert.deepEqual(withFile(text), defaults);
    });
  }
  report("datadog.yaml empty, blank, comment-only or null file", "defaults, no warning");
});

// ---- every setting ----------------------------------------------------------------------

/** The range an integer row's rule states, which its parser must enforce. */
function integerRange(spec: AnyKeySpec): { min: number; max: number } {
  const between = /from (\d+) to (\d+)/.exec(spec.rule);
  if (between !== null) return { min: Number(between[1]), max: Number(between[2]) };
  const above = /greater than (\d+) \(at most (\d+)\)/.exec(spec.rule);
  if (above !== null) return { min: Number(above[1]) + 1, max: Number(above[2]) };
  assert.fail(`${spec.fileKey}: the rule "${spec.rule}" states no range`);
}

const NUMERIC_KEYS = CONFIG_KEYS.filter((spec) => /\binteger\b/.test(spec.rule));

/** Resolves `value` for `spec` from the environment and from the file; both must agree. */
function tryValue(spec: AnyKeySpec, value: string): { accepted: boolean; error?: ConfigError } {
  const outcomes = [
    () => parseConfig({ env: { [spec.envVar]: value } }),
    () => withFile(`${spec.fileKey}: ${value === "" ? "" : JSON.stringify(value)}\n`),
  ].map((fn) => {
    try {
      fn();
      return { accepted: true };
    } catch (e) {
      assert.ok(e instanceof ConfigError, `${spec.envVar}=${value}: not a ConfigError: ${e}`);
      return { accepted: false, error: e };
    }
  });
  assert.equal(outcomes[0]!.accepted, outcomes[1]!.accepted, `${spec.fileKey} ${value}`);
  return outcomes[0]!;
}

Deno.test("every numeric setting: empty, non-numeric, negative and out of range are refused naming key, value and rule", async (t) => {
  assert.ok(NUMERIC_KEYS.length >= 10, `only ${NUMERIC_KEYS.length} numeric settings found`);
  const common = ["", " ", "abc", "-5", "0", "30", "1e9", "12.5", "0x1F", "+45", "4 5", "NaN"];
  const refusedEverywhere = ["", " ", "abc", "-5", "1e9", "12.5", "0x1F", "4 5", "NaN"];
  for (const spec of NUMERIC_KEYS) {
    const { min, max } = integerRange(spec);
    await t.step(`${spec.envVar} (${min} to ${max})`, () => {
      const bounds = [min - 1, min, max, max + 1].filter((n) => n >= 0).map(String);
      for (const value of [...common, ...bounds, ` ${min} `]) {
        const text = value.trim();
        const n = Number(text);
        const expected = /^\+?\d+$/.test(text) && n >= min && n <= max;
        const outcome = tryValue(spec, value);
        assert.equal(outcome.accepted, expected, `${spec.envVar}=${JSON.stringify(value)}`);
        if (refusedEverywhere.includes(value)) assert.equal(outcome.accepted, false);
        if (outcome.error === undefined) continue;
        const e = outcome.error;
        assert.equal(e.key, spec.fileKey);
        assert.equal(e.source, `env ${spec.envVar}`);
        assert.equal(e.value, value);
        assert.equal(e.rule, spec.rule);
        assert.equal(
          e.message,
          `Cannot parse ${spec.fileKey} ${
            JSON.stringify(value)
          } (env ${spec.envVar}): ${spec.rule}`,
        );
      }
    });
  }
  for (const value of refusedEverywhere) {
    report(
      `every numeric setting (${NUMERIC_KEYS.length}) = ${JSON.stringify(value)}`,
      "refused, exit 2, naming key, value and rule",
    );
  }
  report(
    `every numeric setting (${NUMERIC_KEYS.length}) one below / above its range`,
    "refused, exit 2, naming key, value and rule",
  );
});

Deno.test("DD_LEADER_LEASE_DURATION 0, 30, -5, abc and 1e9 are refused; 31 is the least accepted", async (t) => {
  const rule = "must be an integer number of seconds greater than 30 (at most 3600)";
  for (const value of ["0", "30", "-5", "abc", "1e9"]) {
    await t.step(JSON.stringify(value), () => {
      const e = configError(() => parseConfig({ env: { DD_LEADER_LEASE_DURATION: value } }));
      assert.equal(
        e.message,
        `Cannot parse leader_lease_duration ${
          JSON.stringify(value)
        } (env DD_LEADER_LEASE_DURATION): ${rule}`,
      );
      report(`DD_LEADER_LEASE_DURATION=${value}`, `refused, exit 2: "${e.message}"`);
    });
  }
  await t.step('"31"', () => {
    assert.equal(parseConfig({ env: { DD_LEADER_LEASE_DURATION: "31" } }).leaseDurationSeconds, 31);
  });
});

Deno.test("every setting given an empty value is refused, except lists, where empty means none", () => {
  const emptyMeansNone: string[] = [];
  for (const spec of CONFIG_KEYS) {
    // Lists that are empty by default (filters, headers): "" says what the default says.
    const emptyByDefault = (Array.isArray(spec.default) && spec.default.length === 0) ||
      spec.fileMapping === true;
    const outcome = tryValue(spec, "");
    assert.equal(outcome.accepted, emptyByDefault, `${spec.envVar}=""`);
    if (outcome.error !== undefined) {
      assert.equal(outcome.error.key, spec.fileKey);
      assert.equal(outcome.error.rule, spec.rule);
    } else {
      emptyMeansNone.push(spec.envVar);
      assert.deepEqual(parseConfig({ env: { [spec.envVar]: "" } }), parseConfig({ env: {} }));
    }
  }
  report(
    `every setting (${CONFIG_KEYS.length}) set to "" `,
    `refused, exit 2, naming key and rule; ${emptyMeansNone.length} lists take "" as empty`,
  );
});

// ---- subprocesses -----------------------------------------------------------------------

/** The non-empty lines of a text. */
function linesOf(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "");
}

/** The message of a JSON log line (or the line itself when it is not JSON). */
function messageOf(line: string): string {
  try {
    return String(JSON.parse(line).message);
  } catch {
    return line;
  }
}

Deno.test("kevents run with DD_LEADER_LEASE_DURATION=abc exits 2 with one line and starts nothing", async () => {
  await using server = await startFakeApiServer();
  await withTempDir("kevents-bad-input-", async (dir) => {
    await Deno.writeTextFile(`${dir}/kubeconfig`, server.kubeconfig());
    const out = await runMain(["run", "--kubeconfig", `${dir}/kubeconfig`], {
      cwd: dir,
      env: { KUBERNETES: "1", DD_LEADER_LEASE_DURATION: "abc", KEVENTS_HEALTH_PORT: "0" },
    });
    assert.equal(out.code, 2, out.stderr);
    assert.equal(out.stdout, "");
    const lines = linesOf(out.stderr);
    assert.equal(lines.length, 1, out.stderr);
    assert.equal(
      messageOf(lines[0]!),
      'Cannot parse leader_lease_duration "abc" (env DD_LEADER_LEASE_DURATION): must be an ' +
        "integer number of seconds greater than 30 (at most 3600)",
    );
    assert.equal(server.requestLog.count(), 0, "no request reached the API server");
    report("kevents run DD_LEADER_LEASE_DURATION=abc", "exit 2, one stderr line, 0 requests");
  });
});

Deno.test("kevents run with a datadog.yaml syntax error exits 2 naming its line and column, and starts nothing", async () => {
  await using server = await startFakeApiServer();
  await withTempDir("kevents-bad-input-", async (dir) => {
    await Deno.writeTextFile(`${dir}/kubeconfig`, server.kubeconfig());
    await Deno.writeTextFile(
      `${dir}/datadog.yaml`,
      "api_key: x\ncollect_kubernetes_events: true\nkevents_sinks: [stdout\n",
    );
    const out = await runMain(["run", "--kubeconfig", `${dir}/kubeconfig`], {
      cwd: dir,
      env: { KEVENTS_HEALTH_PORT: "0" },
    });
    assert.equal(out.code, 2, out.stderr);
    const lines = linesOf(out.stderr);
    assert.equal(lines.length, 1, out.stderr);
    assert.match(
      messageOf(lines[0]!),
      /^Cannot parse datadog\.yaml: YAML syntax error at line 4, column 1: /,
    );
    assert.equal(server.requestLog.count(), 0);
    report("kevents run with a datadog.yaml syntax error", "exit 2, one stderr line, 0 requests");
  });
});

// ---- the config file itself ----------------------------------------------------------

/**
 * `kevents run` in `dir` to its exit, bounded: a start that blocks (reading
 * a FIFO) fails the test instead of hanging it.
 */
async function runToExit(
  args: string[],
  options: { cwd: string; env?: Record<string, string>; permissions?: string[] },
): Promise<{ code: number; stdout: string; stderr: string }> {
  await using proc = new KeventsProcess(["run", ...args], {
    env: { KEVENTS_HEALTH_PORT: "0", ...options.env },
    cwd: options.cwd,
    permissions: options.permissions,
  });
  await proc.until("kevents to exit", () => proc.exited);
  return { code: await proc.stop(), stdout: proc.stdout, stderr: proc.stderr };
}

const CONFIG_FILE_RULE = "must be a readable regular file (a datadog.yaml, or a directory " +
  "holding one)";

/** The message for a config file that exists but cannot be read. */
function unreadableConfig(path: string, source: string, problem: string): string {
  return `Cannot read config file ${JSON.stringify(path)} (${source}): ${problem}; it ` +
    CONFIG_FILE_RULE;
}

Deno.test("a config file kevents cannot read stops kevents run with exit 2, naming the key, the flag or variable, the path and the rule", async (t) => {
  await withTempDir("kevents-bad-input-", async (dir) => {
    /** Runs kevents and expects exit 2 with exactly `message` as its one line. */
    const refused = async (
      name: string,
      args: string[],
      message: string,
      options: { env?: Record<string, string>; permissions?: string[]; cwd?: string } = {},
    ) => {
      const out = await runToExit(args, { cwd: options.cwd ?? dir, ...options });
      assert.equal(out.code, 2, out.stderr);
      assert.equal(out.stdout, "");
      const lines = linesOf(out.stderr);
      assert.equal(lines.length, 1, out.stderr);
      assert.equal(messageOf(lines[0]!), message);
      report(`config file ${name}`, `exit 2: "${message}"`);
    };

    await t.step(
      "--config naming a file whose name does not end in .yaml reads that file",
      async () => {
        // Tried as a folder holding datadog.yaml first, then as the file itself.
        const file = `${dir}/kevents.conf`;
        await Deno.writeTextFile(
          file,
          "collect_kubernetes_events: true\nleader_lease_duration: 5\n",
        );
        const rule = "must be an integer number of seconds greater than 30 (at most 3600)";
        for (
          const [how, args, env] of [
            ["--config", ["--config", file], {}],
            ["DD_CONF_PATH", [], { DD_CONF_PATH: file }],
          ] as const
        ) {
          await refused(
            `named by ${how} without .yaml, holding a bad value`,
            [...args],
            `Cannot parse leader_lease_duration "5" (${file} line 2): ${rule}`,
            { env },
          );
        }
      },
    );

    await t.step("a path with a file where a folder should be", async () => {
      const path = `${dir}/kevents.conf/datadog.yaml`;
      await refused(
        "with a file as a folder of its path",
        ["--config", path],
        `Cannot parse config file ${JSON.stringify(path)} (--config): must name an existing ` +
          "datadog.yaml (or a directory holding one)",
      );
    });

    await t.step({
      name: "unreadable (mode 000)",
      ignore: isRoot,
      fn: async () => {
        const file = `${dir}/mode000.yaml`;
        await Deno.writeTextFile(file, "collect_kubernetes_events: true\n");
        await Deno.chmod(file, 0o000);
        await refused(
          "unreadable (mode 000)",
          ["--config", file],
          unreadableConfig(
            file,
            "--config",
            "permission denied (its mode or owner, or a folder on its path, keeps kevents out)",
          ),
        );
      },
    });
    if (isRoot) {
      console.log(
        "SKIPPED: the mode-000 config file case runs as root, whom file modes do not stop; " +
          "the --deny-read case below covers the same path",
      );
    }

    await t.step("unreadable to kevents (denied by the runtime)", async () => {
      const file = `${dir}/denied.yaml`;
      await Deno.writeTextFile(file, "collect_kubernetes_events: true\n");
      await refused(
        "unreadable to kevents (--deny-read)",
        ["--config", file],
        unreadableConfig(
          file,
          "--config",
          "kevents is not allowed to read it (Deno's --allow-read)",
        ),
        { permissions: ["--allow-net", "--allow-read", `--deny-read=${file}`, "--allow-env"] },
      );
    });

    await t.step("a loop of symbolic links", async () => {
      const file = `${dir}/loop-a.yaml`;
      await Deno.symlink(`${dir}/loop-b.yaml`, file);
      await Deno.symlink(file, `${dir}/loop-b.yaml`);
      await refused(
        "a loop of symbolic links",
        ["--config", file],
        unreadableConfig(file, "--config", "its path is a loop of symbolic links"),
      );
    });

    await t.step("a named pipe (FIFO), which must not block the start", async () => {
      const fifo = `${dir}/fifo.yaml`;
      const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
      assert.ok(made.success, "mkfifo");
      await refused(
        "a FIFO named by --config",
        ["--config", fifo],
        unreadableConfig(fifo, "--config", "it is a named pipe (FIFO), not a regular file"),
      );
      // DD_CONF_PATH naming a folder whose datadog.yaml is a FIFO.
      const folder = `${dir}/conf`;
      await Deno.mkdir(folder);
      const made2 = await new Deno.Command("mkfifo", { args: [`${folder}/datadog.yaml`] }).output();
      assert.ok(made2.success, "mkfifo");
      await refused(
        "a FIFO as datadog.yaml in the folder DD_CONF_PATH names",
        [],
        unreadableConfig(
          `${folder}/datadog.yaml`,
          "DD_CONF_PATH",
          "it is a named pipe (FIFO), not a regular file",
        ),
        { env: { DD_CONF_PATH: folder } },
      );
      // Without --config or DD_CONF_PATH, a FIFO ./datadog.yaml.
      await refused(
        "a FIFO as ./datadog.yaml",
        [],
        unreadableConfig(
          "datadog.yaml",
          "default, in the working directory",
          "it is a named pipe (FIFO), not a regular file",
        ),
        { cwd: folder },
      );
    });
  });
});

Deno.test("kevents run refuses a webhook CA file that is not PEM and an ENC[...] API key with exit 2, before any request", async (t) => {
  await using server = await startFakeApiServer();
  await withTempDir("kevents-bad-input-", async (dir) => {
    await Deno.writeTextFile(`${dir}/kubeconfig`, server.kubeconfig());
    const refused = async (name: string, env: Record<string, string>, message: string) => {
      server.requestLog.clear();
      const out = await runToExit(["--kubeconfig", `${dir}/kubeconfig`], {
        cwd: dir,
        env: { KUBERNETES: "1", ...env },
      });
      assert.equal(out.code, 2, out.stderr);
      // At most the kubeconfig's "Using ..." line before it: the error is the last line.
      const lines = linesOf(out.stderr);
      assert.ok(lines.length <= 2, out.stderr);
      assert.equal(messageOf(lines.at(-1)!), message);
      assert.equal(server.requestLog.count(), 0, "no request reached the API server");
      report(name, `exit 2: "${message}"`);
    };

    await t.step("a CA file of text instead of certificates", async () => {
      const ca = `${dir}/ca.pem`;
      await Deno.writeTextFile(ca, "ask the platform team for the CA\n");
      await refused(
        "webhook CA file that is not PEM",
        {
          KEVENTS_SINKS: "webhook",
          KEVENTS_WEBHOOK_URL: "https://hooks.example.com/k8s",
          KEVENTS_WEBHOOK_CA_FILE: ca,
        },
        `Cannot use kevents_webhook_ca_file ${JSON.stringify(ca)} (env KEVENTS_WEBHOOK_CA_FILE): ` +
          "it holds no -----BEGIN CERTIFICATE----- block; it must name a readable PEM file of " +
          "one or more CA certificates (-----BEGIN CERTIFICATE----- blocks)",
      );
    });

    await t.step("DD_API_KEY=ENC[...] with the datadog sink", async () => {
      await refused(
        "DD_API_KEY=ENC[dd_api_key] (secrets backend handle)",
        { KEVENTS_SINKS: "datadog", DD_API_KEY: "ENC[dd_api_key]" },
        'Cannot use api_key "ENC[dd_api_key]" (env DD_API_KEY): secrets backends ' +
          "(secret_backend_command) are not supported, so an ENC[...] handle would be sent as " +
          "it is: give the value itself, for example in the environment variable DD_API_KEY " +
          "filled from a Kubernetes Secret (env[].valueFrom.secretKeyRef in the pod spec)",
      );
    });
  });
});

// ---- the token ConfigMap ----------------------------------------------------------------

const NS = "default";
const TOKEN_CM = "datadogtoken";

/** An in-memory sink recording every record it accepts. */
class MemorySink implements Sink {
  readonly name = "memory";
  readonly records: EventRecord[] = [];
  send(batch: readonly EventRecord[]): Promise<void> {
    this.records.push(...batch);
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Resolves once `condition` holds, re-checked every few ms; fails naming `what`. */
async function waitFor(what: () => string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + BOUND_MS;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`Gave up waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

let eventSeq = 0;

/** Creates a core/v1 Event happening now. */
function createEvent(server: FakeApiServer): KubeObject {
  const at = formatTime(new Date());
  return server.create("events", NS, {
    metadata: { name: `bad-input-${++eventSeq}.17f0` },
    involvedObject: { apiVersion: "v1", kind: "Pod", namespace: NS, name: "web-1" },
    reason: "Tested",
    message: `Event ${eventSeq}`,
    type: "Normal",
    count: 1,
    firstTimestamp: at,
    lastTimestamp: at,
    source: { component: "bad-input-test" },
  });
}

/** The token ConfigMap's data, or {} while it does not exist. */
function tokenData(server: FakeApiServer): Record<string, string> {
  return (server.get("configmaps", NS, TOKEN_CM)?.data ?? {}) as Record<string, string>;
}

const keyOf = (o: KubeObject) => `${o.metadata.uid}/${o.metadata.resourceVersion}`;

/** Runs one term against `server` with the token ConfigMap holding `data`, until stopped. */
async function termWithToken(
  server: FakeApiServer,
  data: Record<string, string>,
  body: (ctx: { sink: MemorySink; logs: LogRecord[]; watching: () => boolean }) => Promise<void>,
): Promise<void> {
  const logs: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (record: LogRecord) => void logs.push(record) },
    loggers: [
      { category: ["kevents"], lowestLevel: "info", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["memory"] },
    ],
  });
  server.create("configmaps", NS, { metadata: { name: TOKEN_CM }, data });
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig());
  const client = new KubeClient(kc, { requestTimeoutMs: 5_000 });
  const config = parseConfig({
    env: {
      KUBERNETES: "1",
      KEVENTS_LEASE_DURATION_MS: "30000",
      KEVENTS_CHECKPOINT_INTERVAL_MS: "50",
      KEVENTS_CHECKPOINT_IDLE_INTERVAL_MS: "50",
    },
  });
  const sink = new MemorySink();
  const controller = new AbortController();
  const done = runTerm(
    { client, config, identity: "a", sinks: [sink] },
    { identity: "a", transitions: 0, signal: controller.signal },
  );
  const watching = () =>
    server.requestLog.count({ verb: "watch", resource: "events", code: 200 }) > 0;
  try {
    await body({ sink, logs, watching });
  } finally {
    controller.abort(new Error("Test over"));
    await done.catch(() => {});
    await client.close();
    await reset();
  }
}

const warnings = (logs: LogRecord[]) =>
  logs.filter((r) => r.level === "warning").map((r) => r.message.map(String).join(""));

/** Creates `n` events once the term watches; resolves when each reached the sink, returning duplicates. */
async function deliveredAfterStart(
  server: FakeApiServer,
  ctx: { sink: MemorySink; logs: LogRecord[]; watching: () => boolean },
  n: number,
): Promise<{ lost: number; duplicates: number }> {
  await waitFor(() => `the events watch; warnings: ${warnings(ctx.logs).join("\n")}`, ctx.watching);
  const keys = Array.from({ length: n }, () => keyOf(createEvent(server)));
  const has = () => {
    const seen = new Set(ctx.sink.records.map((r) => r.key));
    return keys.every((k) => seen.has(k));
  };
  await waitFor(() => `${n} events at the sink; warnings: ${warnings(ctx.logs).join("\n")}`, has);
  const delivered = ctx.sink.records.map((r) => r.key);
  const lost = keys.filter((k) => !delivered.includes(k)).length;
  const duplicates = delivered.length - new Set(delivered).size;
  return { lost, duplicates };
}

Deno.test("a token ConfigMap holding garbage: the term starts from now with a warning and loses nothing after", async (t) => {
  const cases: { name: string; data: Record<string, string>; warning: RegExp }[] = [
    {
      name: 'event.tokenKey "abc" (refused by the API server)',
      data: { [TOKEN_KEY]: "abc" },
      warning:
        /The API server refuses the checkpoint's resourceVersion abc .*400 BadRequest.*: starting from now/,
    },
    {
      name: 'event.tokenKey "-1"',
      data: { [TOKEN_KEY]: "-1" },
      warning: /Ignoring the checkpoint: event\.tokenKey holds -1, which is not a resourceVersion/,
    },
    {
      name: 'event.tokenKey "12 34"',
      data: { [TOKEN_KEY]: "12 34" },
      warning: /Ignoring the checkpoint: event\.tokenKey holds 12 34, which is not/,
    },
    {
      name: "event.tokenKey of 1 MiB",
      data: { [TOKEN_KEY]: "7".repeat(1024 * 1024 - 64) },
      warning: /Ignoring the checkpoint: event\.tokenKey holds 7{40}, which is not/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      await using server = await startFakeApiServer();
      await termWithToken(server, c.data, async (ctx) => {
        const { lost, duplicates } = await deliveredAfterStart(server, ctx, 10);
        assert.equal(lost, 0);
        assert.equal(duplicates, 0);
        assert.ok(
          warnings(ctx.logs).some((w) => c.warning.test(w)),
          `no warning matches ${c.warning}:\n${warnings(ctx.logs).join("\n")}`,
        );
        // The checkpoint is repaired: it now holds a resourceVersion the server handed out.
        await waitFor(
          () => "the checkpoint to be rewritten",
          () => /^\d+$/.test(tokenData(server)[TOKEN_KEY] ?? ""),
        );
        for (const w of warnings(ctx.logs)) assert.ok(w.length < 2000, "no huge log line");
        report(
          `token ConfigMap ${c.name}`,
          `warning, starts from now, no crash; 10 events after start: lost ${lost}, duplicates ${duplicates}`,
        );
      });
    });
  }
});

Deno.test("a token ConfigMap with a 1 MiB timestamp or one in 2099 neither stops delivery nor sticks", async (t) => {
  for (
    const [name, stamp, warning] of [
      ["event.tokenTimestamp of 1 MiB", "x".repeat(1024 * 1024 - 64), /is not a time/],
      ["event.tokenTimestamp in 2099", "2099-01-01T00:00:00Z", /2099-01-01T00:00:00Z is more than/],
    ] as const
  ) {
    await t.step(name, async () => {
      await using server = await startFakeApiServer();
      const before = Array.from({ length: 5 }, () => createEvent(server));
      const token = before[1]!.metadata.resourceVersion!;
      await termWithToken(server, { [TOKEN_KEY]: token, [TOKEN_TIMESTAMP]: stamp }, async (ctx) => {
        // The three events after the token are replayed, the new ones delivered.
        const replay = before.slice(2).map(keyOf);
        const { lost, duplicates } = await deliveredAfterStart(server, ctx, 10);
        const delivered = ctx.sink.records.map((r) => r.key);
        assert.deepEqual(delivered.slice(0, 3), replay, "the events after the token, first");
        assert.equal(lost, 0);
        assert.equal(duplicates, 0);
        assert.ok(warnings(ctx.logs).some((w) => warning.test(w)), warnings(ctx.logs).join("\n"));
        await waitFor(
          () => "the checkpoint's time to be a real one",
          () => {
            const ts = tokenData(server)[TOKEN_TIMESTAMP] ?? "";
            return ts.length < 64 && Date.parse(ts) <= Date.now() + TOKEN_TIME_SKEW_MS;
          },
        );
        report(
          `token ConfigMap ${name}`,
          `warning, time ignored and rewritten; replay + 10 new events: lost ${lost}, duplicates ${duplicates}`,
        );
      });
    });
  }
});

Deno.test("tokenFromData refuses what reads as a number but is no unsigned integer, and keeps opaque versions", () => {
  for (const garbage of ["-1", "+5", "1e9", "12.5", ".5", "-0", "1E+3"]) {
    assert.equal(tokenFromData({ [TOKEN_KEY]: garbage }), undefined, garbage);
  }
  for (const rv of ["12345", "007", "opaque-v1", "a1b2-c3", "abc"]) {
    assert.deepEqual(tokenFromData({ [TOKEN_KEY]: rv }), {
      resourceVersion: rv,
      timestamp: undefined,
    });
  }
});

Deno.test("a token time in the future cannot make the 410 relist skip events", async (t) => {
  const now = Date.parse("2026-05-01T10:00:00Z");
  const event = (rv: string, lastTimestamp: string) =>
    ({
      metadata: { resourceVersion: rv },
      involvedObject: {},
      lastTimestamp,
    }) as unknown as CoreV1Event;

  await t.step("a time more than the allowed skew ahead is dropped from the token", () => {
    const token = tokenFromData(
      { [TOKEN_KEY]: "opaque-7", [TOKEN_TIMESTAMP]: "2099-01-01T00:00:00Z" },
      { now },
    );
    assert.deepEqual(token, { resourceVersion: "opaque-7", timestamp: undefined });
    // Without a time, an event of a non-integer resourceVersion cannot be ruled out.
    assert.equal(isNewer(event("opaque-9", "2026-05-01T10:00:05Z"), token!), true);
  });

  await t.step("a time within the skew is kept and still compared", () => {
    const soon = new Date(now + TOKEN_TIME_SKEW_MS - 1000).toISOString();
    const token = tokenFromData({ [TOKEN_KEY]: "opaque-7", [TOKEN_TIMESTAMP]: soon }, { now });
    assert.deepEqual(token, { resourceVersion: "opaque-7", timestamp: soon });
    assert.equal(isNewer(event("opaque-9", "2026-05-01T09:59:00Z"), token as Token), false);
  });

  await t.step(
    "after a 410 with a 2099 token time, every event after the token is delivered",
    async () => {
      await using server = await startFakeApiServer();
      const before = Array.from({ length: 6 }, () => createEvent(server));
      const token = before[2]!.metadata.resourceVersion!;
      // History is compacted past the token: the watch from it answers 410 and the pump relists.
      server.compactNow();
      await termWithToken(
        server,
        { [TOKEN_KEY]: token, [TOKEN_TIMESTAMP]: "2099-01-01T00:00:00Z" },
        async (ctx) => {
          const { lost, duplicates } = await deliveredAfterStart(server, ctx, 5);
          const delivered = new Set(ctx.sink.records.map((r) => r.key));
          const missing = before.slice(3).map(keyOf).filter((k) => !delivered.has(k));
          assert.deepEqual(missing, [], "the events between the token and the relist");
          assert.ok(
            warnings(ctx.logs).some((w) => /is gone|relisting/.test(w)),
            warnings(ctx.logs).join("\n"),
          );
          assert.equal(lost, 0);
          report(
            "token ConfigMap 2099 timestamp, then 410 relist",
            `relist delivers the 3 events after the token; 5 new: lost ${lost}, duplicates ${duplicates}`,
          );
        },
      );
    },
  );
});

// ---- kubeconfigs --------------------------------------------------------------------------

/** A kubeconfig for `server` as admin, changed by `edit`. */
function kubeconfigFor(
  server: FakeApiServer,
  edit: (doc: Json) => void = () => {},
): string {
  const doc = YAML.parse(server.kubeconfig());
  edit(doc);
  return YAML.stringify(doc);
}

const isRoot = Deno.uid() === 0;

Deno.test("a kubeconfig kevents cannot use stops kevents run with exit 2, naming the file, context or field", async (t) => {
  await using server = await startFakeApiServer();
  await withTempDir("kevents-bad-input-", async (dir) => {
    const env = { KUBERNETES: "1", KEVENTS_HEALTH_PORT: "0", KEVENTS_LEASE_DURATION_MS: "4000" };
    const refused = async (
      name: string,
      file: string,
      expected: RegExp,
      permissions?: string[],
    ) => {
      server.requestLog.clear();
      const out = await runMain(["run", "--kubeconfig", file], {
        cwd: dir,
        env,
        permissions,
      });
      assert.equal(out.code, 2, out.stderr);
      const lines = linesOf(out.stderr);
      assert.equal(lines.length, 1, out.stderr);
      assert.match(messageOf(lines[0]!), expected);
      assert.equal(server.requestLog.count(), 0, "no request reached the API server");
      report(`kubeconfig ${name}`, `exit 2: "${messageOf(lines[0]!)}"`);
    };

    await t.step("missing", async () => {
      await refused(
        "missing",
        `${dir}/nope`,
        new RegExp(`^Cannot read kubeconfig from --kubeconfig "${dir}/nope": no such file$`),
      );
    });

    await t.step({
      name: "unreadable (mode 000)",
      ignore: isRoot,
      fn: async () => {
        const file = `${dir}/unreadable`;
        await Deno.writeTextFile(file, kubeconfigFor(server));
        await Deno.chmod(file, 0o000);
        await refused(
          "unreadable (mode 000)",
          file,
          new RegExp(`^Cannot read kubeconfig ${file}: permission denied`),
        );
      },
    });
    if (isRoot) {
      console.log(
        "SKIPPED: the mode-000 kubeconfig case runs as root, whom file modes do not stop; " +
          "the --deny-read case below covers the same path",
      );
    }

    await t.step("unreadable to kevents (denied by the runtime)", async () => {
      const file = `${dir}/denied`;
      await Deno.writeTextFile(file, kubeconfigFor(server));
      await refused(
        "unreadable to kevents (--deny-read)",
        file,
        new RegExp(`^Cannot read kubeconfig ${file}: kevents is not allowed to read it`),
        ["--allow-net", "--allow-read", `--deny-read=${file}`, "--allow-env"],
      );
    });

    await t.step("not YAML", async () => {
      const file = `${dir}/garbage`;
      await Deno.writeTextFile(file, "clusters: [unclosed\n");
      await refused("not YAML", file, new RegExp(`^Cannot parse kubeconfig ${file}: [^\n]+$`));
    });

    await t.step("without a current context", async () => {
      const file = `${dir}/no-context`;
      await Deno.writeTextFile(file, kubeconfigFor(server, (d) => delete d["current-context"]));
      await refused(
        "without current-context",
        file,
        new RegExp(`^Cannot use kubeconfig file ${file}: it has no current context$`),
      );
    });

    await t.step("a context naming a user it does not define", async () => {
      const file = `${dir}/no-user`;
      await Deno.writeTextFile(
        file,
        kubeconfigFor(server, (d) => d.contexts[0].context.user = "ghost"),
      );
      await refused(
        "context naming an undefined user",
        file,
        new RegExp(`context "kevents-fake" names user "ghost", which the kubeconfig does not`),
      );
    });

    await t.step("an oidc auth-provider", async () => {
      const file = `${dir}/oidc`;
      await Deno.writeTextFile(
        file,
        kubeconfigFor(server, (d) => {
          d.users[0].user = {
            "auth-provider": {
              name: "oidc",
              config: { "client-id": "kevents", "idp-issuer-url": "https://issuer.invalid" },
            },
          };
        }),
      );
      await refused(
        "auth-provider oidc",
        file,
        new RegExp(
          `^Cannot use kubeconfig file ${file}: context "kevents-fake", user "admin": ` +
            'auth-provider "oidc" is not supported: use a token, a client certificate or an exec',
        ),
      );
    });

    await t.step("the removed gcp auth-provider", async () => {
      const file = `${dir}/gcp`;
      await Deno.writeTextFile(
        file,
        kubeconfigFor(server, (d) => d.users[0].user = { "auth-provider": { name: "gcp" } }),
      );
      await refused(
        "auth-provider gcp",
        file,
        /auth-provider "gcp" \(removed from kubectl and client-go in Kubernetes 1\.26\)/,
      );
    });

    await t.step("an exec plugin of an unknown apiVersion", async () => {
      const file = `${dir}/exec-alpha`;
      await Deno.writeTextFile(
        file,
        kubeconfigFor(server, (d) => {
          d.users[0].user = {
            exec: { apiVersion: "client.authentication.k8s.io/v1alpha1", command: "/bin/true" },
          };
        }),
      );
      await refused(
        "exec apiVersion client.authentication.k8s.io/v1alpha1",
        file,
        /user "admin": exec apiVersion "client\.authentication\.k8s\.io\/v1alpha1" is not supported: use client\.authentication\.k8s\.io\/v1 or/,
      );
    });

    await t.step("an exec plugin kevents may not run", async () => {
      const file = `${dir}/exec-norun`;
      await Deno.writeTextFile(
        file,
        kubeconfigFor(server, (d) => {
          d.users[0].user = {
            exec: { apiVersion: "client.authentication.k8s.io/v1", command: "/bin/true" },
          };
        }),
      );
      await refused(
        "exec plugin without --allow-run (the binary's permissions)",
        file,
        /the exec credential plugin "\/bin\/true" cannot run, as kevents is not allowed to start programs/,
      );
    });
  });
});

Deno.test("an unreachable API server: kevents keeps retrying about once a second, naming the address", async () => {
  await withTempDir("kevents-bad-input-", async (dir) => {
    // A port that was free a moment ago: connections to it are refused.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    listener.close();
    await using server = await startFakeApiServer();
    const file = `${dir}/kubeconfig`;
    const url = `https://127.0.0.1:${port}`;
    await Deno.writeTextFile(
      file,
      kubeconfigFor(server, (d) => d.clusters[0].cluster.server = url),
    );
    await using proc = new KeventsProcess(["run", "--kubeconfig", file], {
      cwd: dir,
      env: {
        KUBERNETES: "1",
        KEVENTS_HEALTH_PORT: "0",
        KEVENTS_HEALTH_ADDRESS: "127.0.0.1",
        KEVENTS_LEASE_DURATION_MS: "4000",
      },
    });
    const failures = () =>
      proc.logs().filter((l) =>
        l.level === "WARN" && l.message.includes(`127.0.0.1:${port}`) &&
        /ECONNREFUSED|refused/i.test(l.message)
      );
    // The poll of the lock (every retry period) and the follower's watch of it
    // (with its own backoff) are separate streams of attempts.
    const streams = () => {
      const byKind = new Map<string, number[]>();
      for (const l of failures()) {
        const kind = l.message.slice(0, l.message.indexOf(":"));
        byKind.set(kind, [...byKind.get(kind) ?? [], Date.parse(l["@timestamp"])]);
      }
      return byKind;
    };
    await proc.until(
      "four failed attempts of one kind",
      () => [...streams().values()].some((times) => times.length >= 4),
    );
    assert.ok(
      proc.logs().some((l) => l.level === "INFO" && l.message.includes(url)),
      "the start names the server's URL",
    );
    const gaps: number[] = [];
    for (const [kind, times] of streams()) {
      const between = times.slice(1).map((at, i) => at - times[i]!);
      // The retry period is a quarter of the 4 s lease: about one attempt a second, never a spin.
      for (const gap of between) assert.ok(gap >= 800, `${kind}: attempts ${between} ms apart`);
      gaps.push(...between);
    }
    assert.equal(proc.exited, false, "it keeps running");
    const code = await proc.stop();
    assert.equal(code, 0, proc.stderr);
    report(
      "kubeconfig naming an unreachable server (connection refused)",
      `keeps running, retries every ${Math.min(...gaps)}-${Math.max(...gaps)} ms, ` +
        "warnings name the address; SIGTERM exits 0",
    );
  });
});
