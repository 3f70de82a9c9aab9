import assert from "node:assert/strict";
import {
  AGENT5_FILE,
  agent5FileCandidates,
  type Config,
  CONFIG_KEYS,
  ConfigError,
  configFileCandidates,
  type ConfigInput,
  parseConfig,
} from "../../lib/config/mod.ts";

// Pure: every input is a literal; nothing reads the process environment or a file.

const DEFAULTS: Config = {
  collectEvents: false,
  leaderElection: false,
  controlPlaneCheck: false,
  controlPlaneCheckIntervalMs: 15_000,
  leaseDurationSeconds: 60,
  leaseName: "datadog-leader-election",
  leaderElectionResource: "lease",
  resourcesNamespace: "default",
  tokenConfigMapName: "datadogtoken",
  timings: {
    leaseDurationMs: 60_000,
    renewDeadlineMs: 30_000,
    retryPeriodMs: 15_000,
    requestTimeoutMs: 10_000,
  },
  checkpoint: { intervalMs: 1000, maxEvents: 500, idleIntervalMs: 60_000 },
  checkpointLag: { eventTtlMs: 3_600_000, share: 0.5, limitMs: 1_800_000 },
  backfill: false,
  startWindowMs: 0,
  routes: {},
  sinks: ["stdout"],
  outputs: [{ name: "stdout", type: "stdout" }],
  queueCapacity: 1000,
  batchWindowMs: 0,
  enrich: { enabled: false, requestBudget: 50, podLabelsAsTags: {}, namespaceLabelsAsTags: {} },
  webhook: {
    url: undefined,
    format: "ndjson",
    headers: {},
    bearerToken: undefined,
    caFile: undefined,
    certFile: undefined,
    keyFile: undefined,
    insecureSkipVerify: false,
    onFailure: "retry",
    maxAttempts: 5,
  },
  datadog: {
    apiKey: undefined,
    site: "datadoghq.com",
    url: undefined,
    unbundleEvents: false,
    collectedEventTypes: [],
    bundleUnspecifiedEvents: false,
    filteringEnabled: false,
    sourceDetection: false,
    tags: [],
    noProxy: [],
    onFailure: "retry",
    maxAttempts: 5,
  },
  otlp: {
    url: undefined,
    protocol: "http/protobuf",
    compression: "gzip",
    headers: {},
    caFile: undefined,
    certFile: undefined,
    keyFile: undefined,
    insecureSkipVerify: false,
    onFailure: "retry",
    maxAttempts: 5,
  },
  health: { address: "0.0.0.0", port: 5555, watchStallLimitMs: 600_000 },
  followerWatch: true,
  shutdownBudgetMs: 20_000,
  watchFailureLimitMs: 180_000,
  warnings: [],
};

const PATH = "/etc/datadog-agent/datadog.yaml";

function input(env: Record<string, string>, fileText?: string, sa?: string): ConfigInput {
  return {
    env,
    ...(fileText === undefined ? {} : { file: { path: PATH, text: fileText } }),
    ...(sa === undefined ? {} : { serviceAccountNamespace: sa }),
  };
}

const LEASE_RULE = "must be an integer number of seconds greater than 30 (at most 3600)";
const BOOL_RULE = "must be a boolean (true/false, yes/no, on/off, 1/0, t/f or y/n, in any case)";
const LABEL_RULE = "must be a DNS-1123 label (at most 63 characters: lowercase letters, " +
  "digits and '-', starting and ending with a letter or digit)";
const SINKS_RULE = "must be a non-empty list of sinks (comma-separated names, or a list: JSON " +
  'in the environment, YAML in the file), each one of "stdout", "null", "webhook", "datadog", ' +
  '"otlp" or a mapping with a name (lower-case letters, digits, - and _, at most 63) and a type; ' +
  "every name used once";
const KUBERNETES_FALSE_WARNING = 'KUBERNETES is "false": any non-empty value turns on the ' +
  "control-plane check, and event collection unless collect_kubernetes_events is set, as in " +
  "the Agent; unset it to turn them off";
const NOT_COLLECTED_WARNING = (source: string) =>
  `Events are not collected: collect_kubernetes_events is false (${source}), which wins over ` +
  "KUBERNETES; KUBERNETES turns on the control-plane check only";
const LEADER_WARNING = (source: string) =>
  `Turned leader_election on: it is false (${source}) but collecting events requires it, ` +
  "so that one replica collects at a time";

interface Accepted {
  name: string;
  input: ConfigInput;
  /** Fields that differ from DEFAULTS. */
  expect: Partial<Config>;
}

const accepted: Accepted[] = [
  { name: "no file and no environment gives the defaults", input: input({}), expect: {} },
  { name: "an empty file sets nothing", input: input({}, ""), expect: {} },
  {
    name: "a file of comments and unknown Agent keys sets nothing",
    input: input({}, "# datadog.yaml\nhostname: abc\nlogs_config:\n  enabled: true\ntags: [a]\n"),
    expect: {},
  },
  {
    name: "collecting events from the file turns leader election on without a warning",
    input: input({}, "collect_kubernetes_events: true\n"),
    expect: { collectEvents: true, leaderElection: true },
  },
  {
    name: "the environment beats the file",
    input: input(
      { DD_LEADER_LEASE_DURATION: "90", DD_LEADER_LEASE_NAME: "from-env" },
      "leader_lease_duration: 45\nleader_lease_name: from-file\nkevents_backfill: true\n",
    ),
    expect: {
      leaseDurationSeconds: 90,
      leaseName: "from-env",
      backfill: true,
      timings: {
        leaseDurationMs: 90_000,
        renewDeadlineMs: 45_000,
        retryPeriodMs: 22_500,
        requestTimeoutMs: 10_000,
      },
    },
  },
  {
    name: "the request timeout is a third of the renew deadline when that is under 10 s",
    input: input({ DD_LEADER_LEASE_DURATION: "45" }),
    expect: {
      leaseDurationSeconds: 45,
      timings: {
        leaseDurationMs: 45_000,
        renewDeadlineMs: 22_500,
        retryPeriodMs: 11_250,
        requestTimeoutMs: 7_500,
      },
    },
  },
  {
    name: "KUBERNETES turns on event collection, the control-plane check and leader election",
    input: input({ KUBERNETES: "yes" }),
    expect: { collectEvents: true, controlPlaneCheck: true, leaderElection: true },
  },
  {
    name: "an empty KUBERNETES changes nothing",
    input: input({ KUBERNETES: "" }),
    expect: {},
  },
  {
    name: "KUBERNETES=false still turns things on, as in the Agent, with a warning",
    input: input({ KUBERNETES: "false" }),
    expect: {
      collectEvents: true,
      controlPlaneCheck: true,
      leaderElection: true,
      warnings: [KUBERNETES_FALSE_WARNING],
    },
  },
  {
    name: "collect_kubernetes_events=false in the file wins over KUBERNETES, which keeps the " +
      "control-plane check on",
    input: input({ KUBERNETES: "true" }, "collect_kubernetes_events: false\n"),
    expect: {
      controlPlaneCheck: true,
      // The leader runs the check: one replica at a time.
      leaderElection: true,
      warnings: [NOT_COLLECTED_WARNING(`${PATH} line 1`)],
    },
  },
  {
    name: "DD_COLLECT_KUBERNETES_EVENTS=false wins over KUBERNETES=false",
    input: input({ KUBERNETES: "false", DD_COLLECT_KUBERNETES_EVENTS: "false" }),
    expect: {
      controlPlaneCheck: true,
      leaderElection: true,
      warnings: [
        KUBERNETES_FALSE_WARNING,
        NOT_COLLECTED_WARNING("env DD_COLLECT_KUBERNETES_EVENTS"),
      ],
    },
  },
  {
    name: "DD_COLLECT_KUBERNETES_EVENTS=false wins over collect_kubernetes_events: true and " +
      "KUBERNETES",
    input: input(
      { KUBERNETES: "1", DD_COLLECT_KUBERNETES_EVENTS: "0" },
      "collect_kubernetes_events: true\n",
    ),
    expect: {
      controlPlaneCheck: true,
      leaderElection: true,
      warnings: [NOT_COLLECTED_WARNING("env DD_COLLECT_KUBERNETES_EVENTS")],
    },
  },
  {
    name: "collect_kubernetes_events=true with KUBERNETES collects, without a warning",
    input: input({ KUBERNETES: "1", DD_COLLECT_KUBERNETES_EVENTS: "true" }),
    expect: { collectEvents: true, controlPlaneCheck: true, leaderElection: true },
  },
  {
    name: "the shutdown budget and the watch failure limit are whole seconds, kept in ms",
    input: input(
      { KEVENTS_SHUTDOWN_BUDGET_SECONDS: "3600" },
      "kevents_shutdown_budget_seconds: 5\nkevents_watch_failure_limit_seconds: 1\n",
    ),
    expect: { shutdownBudgetMs: 3_600_000, watchFailureLimitMs: 1000 },
  },
  {
    name: "the watch failure limit takes up to a day",
    input: input({ KEVENTS_WATCH_FAILURE_LIMIT_SECONDS: " 86400 " }),
    expect: { watchFailureLimitMs: 86_400_000 },
  },
  {
    name: "api_key: ENC[...] is left alone when the datadog sink is off (an Agent may resolve it)",
    input: input({}, "api_key: ENC[dd_api_key]\nsecret_backend_command: /readsecret.sh\n"),
    expect: {
      datadog: { ...DEFAULTS.datadog, apiKey: "ENC[dd_api_key]" },
    },
  },
  {
    name: "leader election set false while collecting events is forced on with a warning",
    input: input({ DD_COLLECT_KUBERNETES_EVENTS: "true", DD_LEADER_ELECTION: "false" }),
    expect: {
      collectEvents: true,
      leaderElection: true,
      warnings: [LEADER_WARNING("env DD_LEADER_ELECTION")],
    },
  },
  {
    name: "the leader-election warning names the file line when the file set it false",
    input: input({ DD_COLLECT_KUBERNETES_EVENTS: "1" }, "# x\nleader_election: no\n"),
    expect: {
      collectEvents: true,
      leaderElection: true,
      warnings: [LEADER_WARNING(`${PATH} line 2`)],
    },
  },
  {
    name: "leader election can be on without collecting events",
    input: input({ DD_LEADER_ELECTION: "on" }),
    expect: { leaderElection: true },
  },
  {
    name: "the expert lease duration drives the timings and warns; leader_lease_duration stays",
    input: input({ KEVENTS_LEASE_DURATION_MS: "4000" }),
    expect: {
      timings: {
        leaseDurationMs: 4000,
        renewDeadlineMs: 2000,
        retryPeriodMs: 1000,
        requestTimeoutMs: 666,
      },
      warnings: [
        "Expert setting kevents_lease_duration_ms=4000 (env KEVENTS_LEASE_DURATION_MS) " +
        "overrides leader_lease_duration (60 s) for leader-election timing: 4000 ms is below " +
        "the 30 s the Agent requires; use it only for tests and demos",
      ],
    },
  },
  {
    name: "an expert lease duration above 30 s warns without calling it too short",
    input: input({}, "kevents_lease_duration_ms: 120000\nleader_lease_duration: 31\n"),
    expect: {
      leaseDurationSeconds: 31,
      timings: {
        leaseDurationMs: 120_000,
        renewDeadlineMs: 60_000,
        retryPeriodMs: 30_000,
        requestTimeoutMs: 10_000,
      },
      warnings: [
        `Expert setting kevents_lease_duration_ms=120000 (${PATH} line 1) overrides ` +
        "leader_lease_duration (31 s) for leader-election timing",
      ],
    },
  },
  {
    name: "the namespace defaults to the service-account namespace, trimmed",
    input: input({}, undefined, "kube-system\n"),
    expect: { resourcesNamespace: "kube-system" },
  },
  {
    name: "a blank service-account namespace file falls back to default",
    input: input({}, undefined, " \n"),
    expect: {},
  },
  {
    name: "the file's namespace beats the service-account namespace",
    input: input({}, "kube_resources_namespace: monitoring\n", "kube-system"),
    expect: { resourcesNamespace: "monitoring" },
  },
  {
    name: "a namespace set by the user wins over an unusable service-account namespace",
    input: input({ DD_KUBE_RESOURCES_NAMESPACE: "ops" }, undefined, "Not_A_Namespace"),
    expect: { resourcesNamespace: "ops" },
  },
  {
    name: "the environment's namespace beats the file's",
    input: input({ DD_KUBE_RESOURCES_NAMESPACE: "ops" }, "kube_resources_namespace: monitoring"),
    expect: { resourcesNamespace: "ops" },
  },
  {
    name: "names, sinks, checkpoint batching and queue capacity come from the environment",
    input: input({
      DD_LEADER_LEASE_NAME: "kevents.leader",
      DD_KUBERNETES_EVENT_TOKEN_CONFIGMAP: "kevents-token",
      KEVENTS_SINKS: " null , stdout ",
      KEVENTS_CHECKPOINT_INTERVAL_MS: "10",
      KEVENTS_CHECKPOINT_MAX_EVENTS: "1000000",
      KEVENTS_CHECKPOINT_IDLE_INTERVAL_MS: "20",
      KEVENTS_QUEUE_CAPACITY: "1",
      KEVENTS_BACKFILL: "TRUE",
    }),
    expect: {
      leaseName: "kevents.leader",
      tokenConfigMapName: "kevents-token",
      sinks: ["null", "stdout"],
      outputs: [{ name: "null", type: "null" }, { name: "stdout", type: "stdout" }],
      checkpoint: { intervalMs: 10, maxEvents: 1_000_000, idleIntervalMs: 20 },
      queueCapacity: 1,
      backfill: true,
    },
  },
  {
    name: "the event TTL and the checkpoint lag share make the lag limit",
    input: input({ KEVENTS_EVENT_TTL_SECONDS: "7200" }, "kevents_checkpoint_lag_share: .25\n"),
    expect: { checkpointLag: { eventTtlMs: 7_200_000, share: 0.25, limitMs: 1_800_000 } },
  },
  {
    name: "the file takes YAML booleans, numbers, quoted strings and a list of sinks",
    input: input(
      {},
      [
        "collect_kubernetes_events: yes",
        "leader_election: True",
        'leader_lease_duration: "45"',
        "kevents_backfill: 1",
        "kevents_queue_capacity: 2000",
        "kevents_sinks: [null, stdout]",
        "kubernetes_event_token_configmap: 'kevents-token'",
      ].join("\n"),
    ),
    expect: {
      collectEvents: true,
      leaderElection: true,
      leaseDurationSeconds: 45,
      timings: {
        leaseDurationMs: 45_000,
        renewDeadlineMs: 22_500,
        retryPeriodMs: 11_250,
        requestTimeoutMs: 7_500,
      },
      backfill: true,
      queueCapacity: 2000,
      sinks: ["null", "stdout"],
      outputs: [{ name: "null", type: "null" }, { name: "stdout", type: "stdout" }],
      tokenConfigMapName: "kevents-token",
    },
  },
  {
    name: "file keys match case-insensitively, as in the Agent",
    input: input({}, "Collect_Kubernetes_Events: true\n"),
    expect: { collectEvents: true, leaderElection: true },
  },
  {
    name: "a YAML alias is followed",
    input: input({}, "x: &lease 50\nleader_lease_duration: *lease\n"),
    expect: {
      leaseDurationSeconds: 50,
      timings: {
        leaseDurationMs: 50_000,
        renewDeadlineMs: 25_000,
        retryPeriodMs: 12_500,
        requestTimeoutMs: 8_333,
      },
    },
  },
  {
    name: "leader_lease_duration accepts the bounds 31 and 3600 and surrounding spaces",
    input: input({ DD_LEADER_LEASE_DURATION: " 3600 " }, "leader_lease_duration: 31\n"),
    expect: {
      leaseDurationSeconds: 3600,
      timings: {
        leaseDurationMs: 3_600_000,
        renewDeadlineMs: 1_800_000,
        retryPeriodMs: 900_000,
        requestTimeoutMs: 10_000,
      },
    },
  },
];

Deno.test("parseConfig resolves defaults < datadog.yaml < environment", async (t) => {
  for (const c of accepted) {
    await t.step(c.name, () => {
      assert.deepEqual(parseConfig(c.input), { ...DEFAULTS, ...c.expect });
    });
  }
});

Deno.test("booleans accept what the Agent accepts, in any case, trimmed", async (t) => {
  const spellings: [string, boolean][] = [
    ["true", true],
    ["True", true],
    ["TRUE", true],
    ["t", true],
    ["T", true],
    ["1", true],
    ["yes", true],
    ["Yes", true],
    ["y", true],
    ["on", true],
    ["ON", true],
    [" true\n", true],
    ["false", false],
    ["False", false],
    ["FALSE", false],
    ["f", false],
    ["0", false],
    ["no", false],
    ["NO", false],
    ["n", false],
    ["off", false],
    ["Off", false],
    ["\tno ", false],
  ];
  for (const [spelling, expected] of spellings) {
    await t.step(`${JSON.stringify(spelling)} is ${expected} in the environment`, () => {
      const config = parseConfig(input({ KEVENTS_BACKFILL: spelling }));
      assert.equal(config.backfill, expected);
    });
    await t.step(`${JSON.stringify(spelling.trim())} is ${expected} in the file`, () => {
      const config = parseConfig(input({}, `kevents_backfill: ${spelling.trim()}\n`));
      assert.equal(config.backfill, expected);
    });
  }
});

const SECRET_HANDLE_MESSAGE = (key: string, value: string, source: string, envVar: string) =>
  `Cannot use ${key} "${value}" (${source}): secrets backends (secret_backend_command) are ` +
  "not supported, so an ENC[...] handle would be sent as it is: give the value itself, for " +
  `example in the environment variable ${envVar} filled from a Kubernetes Secret ` +
  "(env[].valueFrom.secretKeyRef in the pod spec)";

interface Rejected {
  name: string;
  input: ConfigInput;
  /** The exact message. */
  message: string;
}

const lease = (value: string) => ({
  name: `leader_lease_duration ${JSON.stringify(value)} is refused`,
  input: input({ DD_LEADER_LEASE_DURATION: value }),
  message: `Cannot parse leader_lease_duration ${
    JSON.stringify(value)
  } (env DD_LEADER_LEASE_DURATION): ${LEASE_RULE}`,
});

const rejected: Rejected[] = [
  lease("0"),
  lease("30"),
  lease("-5"),
  lease("abc"),
  lease("1e9"),
  lease(""),
  lease("12.5"),
  lease("3601"),
  lease("0x3C"),
  {
    name: "a bad value in the file names the file and the line of the key",
    input: input({}, "# kevents\ncollect_kubernetes_events: true\nleader_lease_duration: 20\n"),
    message: `Cannot parse leader_lease_duration "20" (${PATH} line 3): ${LEASE_RULE}`,
  },
  {
    name: "a YAML float is refused like in the environment",
    input: input({}, "leader_lease_duration: 45.0\n"),
    message: `Cannot parse leader_lease_duration "45.0" (${PATH} line 1): ${LEASE_RULE}`,
  },
  {
    name: "a key with no value is refused",
    input: input({}, "leader_lease_duration:\n"),
    message: `Cannot parse leader_lease_duration "" (${PATH} line 1): ${LEASE_RULE}`,
  },
  {
    name: "a file value the environment overrides is still validated",
    input: input({ DD_LEADER_LEASE_DURATION: "60" }, "leader_lease_duration: 10\n"),
    message: `Cannot parse leader_lease_duration "10" (${PATH} line 1): ${LEASE_RULE}`,
  },
  {
    name: "the expert setting does not relax leader_lease_duration",
    input: input({ KEVENTS_LEASE_DURATION_MS: "5000", DD_LEADER_LEASE_DURATION: "5" }),
    message: `Cannot parse leader_lease_duration "5" (env DD_LEADER_LEASE_DURATION): ${LEASE_RULE}`,
  },
  {
    name: "an expert lease duration under 1000 ms is refused",
    input: input({ KEVENTS_LEASE_DURATION_MS: "999" }),
    message: 'Cannot parse kevents_lease_duration_ms "999" (env KEVENTS_LEASE_DURATION_MS): ' +
      "must be an integer number of milliseconds from 1000 to 3600000",
  },
  {
    name: "an expert lease duration over an hour is refused",
    input: input({ KEVENTS_LEASE_DURATION_MS: "3600001" }),
    message: 'Cannot parse kevents_lease_duration_ms "3600001" (env KEVENTS_LEASE_DURATION_MS): ' +
      "must be an integer number of milliseconds from 1000 to 3600000",
  },
  {
    name: "a word that is not a boolean is refused",
    input: input({ DD_COLLECT_KUBERNETES_EVENTS: "maybe" }),
    message:
      `Cannot parse collect_kubernetes_events "maybe" (env DD_COLLECT_KUBERNETES_EVENTS): ${BOOL_RULE}`,
  },
  {
    name: "an empty boolean variable is refused",
    input: input({ DD_LEADER_ELECTION: "" }),
    message: `Cannot parse leader_election "" (env DD_LEADER_ELECTION): ${BOOL_RULE}`,
  },
  {
    name: "a number other than 0 or 1 is not a boolean",
    input: input({}, "kevents_backfill: 2\n"),
    message: `Cannot parse kevents_backfill "2" (${PATH} line 1): ${BOOL_RULE}`,
  },
  {
    name: "a YAML list where a boolean is expected is refused",
    input: input({}, "collect_kubernetes_events: [true]\n"),
    message: `Cannot parse collect_kubernetes_events [true] (${PATH} line 1): ${BOOL_RULE}`,
  },
  {
    name: "a YAML mapping where a number is expected is refused",
    input: input({}, "leader_lease_duration:\n  seconds: 45\n"),
    message: `Cannot parse leader_lease_duration {"seconds":45} (${PATH} line 1): ${LEASE_RULE}`,
  },
  {
    name: "a namespace with capitals is refused",
    input: input({ DD_KUBE_RESOURCES_NAMESPACE: "Kube-System" }),
    message:
      `Cannot parse kube_resources_namespace "Kube-System" (env DD_KUBE_RESOURCES_NAMESPACE): ${LABEL_RULE}`,
  },
  {
    name: "a namespace with a dot is refused (a label, not a subdomain)",
    input: input({}, "kube_resources_namespace: a.b\n"),
    message: `Cannot parse kube_resources_namespace "a.b" (${PATH} line 1): ${LABEL_RULE}`,
  },
  {
    name: "a namespace of 64 characters is refused",
    input: input({ DD_KUBE_RESOURCES_NAMESPACE: "a".repeat(64) }),
    message: `Cannot parse kube_resources_namespace "${
      "a".repeat(64)
    }" (env DD_KUBE_RESOURCES_NAMESPACE): ${LABEL_RULE}`,
  },
  {
    name: "a bad service-account namespace is reported as such",
    input: input({}, undefined, "Not_A_Namespace\n"),
    message:
      `Cannot parse kube_resources_namespace "Not_A_Namespace" (service-account namespace file): ${LABEL_RULE}`,
  },
  {
    name: "a lease name starting with a dash is refused",
    input: input({ DD_LEADER_LEASE_NAME: "-leader" }),
    message: 'Cannot parse leader_lease_name "-leader" (env DD_LEADER_LEASE_NAME): must be a ' +
      "DNS-1123 subdomain (at most 253 characters: lowercase letters, digits, '-' and '.', " +
      "each dot-separated part starting and ending with a letter or digit)",
  },
  {
    name: "an unknown sink is refused",
    input: input({ KEVENTS_SINKS: "stdout,kafka" }),
    message: `Cannot parse kevents_sinks "stdout,kafka" (env KEVENTS_SINKS): ${SINKS_RULE}`,
  },
  {
    name: "a sink named twice is refused",
    input: input({ KEVENTS_SINKS: "stdout, stdout" }),
    message: `Cannot parse kevents_sinks "stdout, stdout" (env KEVENTS_SINKS): ${SINKS_RULE}`,
  },
  {
    name: "an empty sink list is refused",
    input: input({ KEVENTS_SINKS: "" }),
    message: `Cannot parse kevents_sinks "" (env KEVENTS_SINKS): ${SINKS_RULE}`,
  },
  {
    name: "a trailing comma in the sink list is refused",
    input: input({ KEVENTS_SINKS: "stdout," }),
    message: `Cannot parse kevents_sinks "stdout," (env KEVENTS_SINKS): ${SINKS_RULE}`,
  },
  {
    name: "an unknown sink in a YAML list is refused",
    input: input({}, "kevents_sinks:\n  - stdout\n  - kafka\n"),
    message: `Cannot parse kevents_sinks ["stdout","kafka"] (${PATH} line 1): ${SINKS_RULE}`,
  },
  {
    name: "a checkpoint interval under 10 ms is refused",
    input: input({ KEVENTS_CHECKPOINT_INTERVAL_MS: "9" }),
    message: 'Cannot parse kevents_checkpoint_interval_ms "9" (env ' +
      "KEVENTS_CHECKPOINT_INTERVAL_MS): must be an integer number of milliseconds from 10 to 600000",
  },
  {
    name: "a checkpoint lag share in percent is refused",
    input: input({ KEVENTS_CHECKPOINT_LAG_SHARE: "50%" }),
    message: 'Cannot parse kevents_checkpoint_lag_share "50%" (env ' +
      "KEVENTS_CHECKPOINT_LAG_SHARE): must be a decimal fraction from 0.01 to 1, 1 excluded " +
      "(such as 0.5)",
  },
  {
    name: "a checkpoint lag share of 1 is refused",
    input: input({ KEVENTS_CHECKPOINT_LAG_SHARE: "1" }),
    message: 'Cannot parse kevents_checkpoint_lag_share "1" (env ' +
      "KEVENTS_CHECKPOINT_LAG_SHARE): must be a decimal fraction from 0.01 to 1, 1 excluded " +
      "(such as 0.5)",
  },
  {
    name: "a checkpoint lag share of 0.0 is refused",
    input: input({ KEVENTS_CHECKPOINT_LAG_SHARE: "0.0" }),
    message: 'Cannot parse kevents_checkpoint_lag_share "0.0" (env ' +
      "KEVENTS_CHECKPOINT_LAG_SHARE): must be a decimal fraction from 0.01 to 1, 1 excluded " +
      "(such as 0.5)",
  },
  {
    name: "zero checkpoint events is refused",
    input: input({ KEVENTS_CHECKPOINT_MAX_EVENTS: "0" }),
    message: 'Cannot parse kevents_checkpoint_max_events "0" (env ' +
      "KEVENTS_CHECKPOINT_MAX_EVENTS): must be an integer from 1 to 1000000",
  },
  {
    name: "a queue over a million events is refused",
    input: input({ KEVENTS_QUEUE_CAPACITY: "1000001" }),
    message: 'Cannot parse kevents_queue_capacity "1000001" (env KEVENTS_QUEUE_CAPACITY): ' +
      "must be an integer from 1 to 1000000",
  },
  {
    name: "a shutdown budget of 0 s is refused",
    input: input({ KEVENTS_SHUTDOWN_BUDGET_SECONDS: "0" }),
    message: 'Cannot parse kevents_shutdown_budget_seconds "0" (env ' +
      "KEVENTS_SHUTDOWN_BUDGET_SECONDS): must be an integer number of seconds from 1 to 3600",
  },
  {
    name: "a shutdown budget over an hour is refused",
    input: input({}, "kevents_shutdown_budget_seconds: 3601\n"),
    message: `Cannot parse kevents_shutdown_budget_seconds "3601" (${PATH} line 1): ` +
      "must be an integer number of seconds from 1 to 3600",
  },
  {
    name: "a shutdown budget in milliseconds or with a unit is refused",
    input: input({ KEVENTS_SHUTDOWN_BUDGET_SECONDS: "20s" }),
    message: 'Cannot parse kevents_shutdown_budget_seconds "20s" (env ' +
      "KEVENTS_SHUTDOWN_BUDGET_SECONDS): must be an integer number of seconds from 1 to 3600",
  },
  {
    name: "a watch failure limit of 0 s is refused",
    input: input({ KEVENTS_WATCH_FAILURE_LIMIT_SECONDS: "0" }),
    message: 'Cannot parse kevents_watch_failure_limit_seconds "0" (env ' +
      "KEVENTS_WATCH_FAILURE_LIMIT_SECONDS): must be an integer number of seconds from 1 to 86400",
  },
  {
    name: "a watch failure limit over a day is refused",
    input: input({ KEVENTS_WATCH_FAILURE_LIMIT_SECONDS: "86401" }),
    message: 'Cannot parse kevents_watch_failure_limit_seconds "86401" (env ' +
      "KEVENTS_WATCH_FAILURE_LIMIT_SECONDS): must be an integer number of seconds from 1 to 86400",
  },
  {
    name:
      "DD_API_KEY=ENC[...] is refused with the datadog sink: secrets backends are not supported",
    input: input({ KEVENTS_SINKS: "datadog", DD_API_KEY: "ENC[dd_api_key]" }),
    message: SECRET_HANDLE_MESSAGE("api_key", "ENC[dd_api_key]", "env DD_API_KEY", "DD_API_KEY"),
  },
  {
    name: "api_key: ENC[...] in the file is refused with the datadog sink",
    input: input({ KEVENTS_SINKS: "datadog" }, "# x\napi_key: ' ENC[k8s_secret@ns/dd/key] '\n"),
    message: SECRET_HANDLE_MESSAGE(
      "api_key",
      "ENC[k8s_secret@ns/dd/key]",
      `${PATH} line 2`,
      "DD_API_KEY",
    ),
  },
  {
    name: "a webhook bearer token ENC[...] is refused",
    input: input({ KEVENTS_WEBHOOK_BEARER_TOKEN: "ENC[hook_token]" }),
    message: SECRET_HANDLE_MESSAGE(
      "kevents_webhook_bearer_token",
      "ENC[hook_token]",
      "env KEVENTS_WEBHOOK_BEARER_TOKEN",
      "KEVENTS_WEBHOOK_BEARER_TOKEN",
    ),
  },
  {
    name: "a webhook header value ENC[...] is refused, naming the header",
    input: input({}, "kevents_webhook_headers:\n  X-Team: ops\n  DD-API-KEY: ENC[dd_api_key]\n"),
    message: SECRET_HANDLE_MESSAGE(
      "kevents_webhook_headers DD-API-KEY",
      "ENC[dd_api_key]",
      `${PATH} line 1`,
      "KEVENTS_WEBHOOK_HEADERS",
    ),
  },
  {
    name: "a YAML syntax error gives its line and column",
    input: input({}, "collect_kubernetes_events: true\nleader_lease_duration: 45: 50\n"),
    message: `Cannot parse ${PATH}: YAML syntax error at line 2, column 24: ` +
      "Nested mappings are not allowed in compact mappings",
  },
  {
    name: "an unterminated quote is a YAML syntax error",
    input: input({}, 'leader_lease_name: "abc\n'),
    message: `Cannot parse ${PATH}: YAML syntax error at line 2, column 1: Missing closing "quote`,
  },
  {
    name: "a top level that is a list is refused",
    input: input({}, "- collect_kubernetes_events: true\n"),
    message: `Cannot parse ${PATH}: the top level must be a mapping of settings ` +
      "(key: value lines), found a list at line 1",
  },
  {
    name: "a top level that is a single value is refused",
    input: input({}, "\ncollect_kubernetes_events\n"),
    message: `Cannot parse ${PATH}: the top level must be a mapping of settings ` +
      '(key: value lines), found the value "collect_kubernetes_events" at line 2',
  },
  {
    name: "a key written twice in different cases is refused",
    input: input({}, "leader_election: true\nLEADER_ELECTION: false\n"),
    message: `Cannot parse ${PATH}: leader_election is set twice, at ${PATH} line 1 and line 2`,
  },
];

Deno.test("parseConfig refuses a bad value naming the key, its source, the value and the rule", async (t) => {
  for (const c of rejected) {
    await t.step(c.name, () => {
      assert.throws(
        () => parseConfig(c.input),
        (e) => {
          assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
          assert.equal(e.message, c.message);
          return true;
        },
      );
    });
  }
});

Deno.test("a ConfigError carries its parts as fields", () => {
  assert.throws(
    () => parseConfig(input({}, "\n\nleader_lease_duration: abc\n")),
    (e) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.name, "ConfigError");
      assert.equal(e.key, "leader_lease_duration");
      assert.equal(e.source, `${PATH} line 3`);
      assert.equal(e.value, "abc");
      assert.equal(e.rule, LEASE_RULE);
      return true;
    },
  );
  assert.throws(
    () => parseConfig(input({}, "a: [\n")),
    (e) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.key, "");
      assert.match(e.source, new RegExp(`^${PATH} line \\d+, column \\d+$`));
      return true;
    },
  );
});

Deno.test("parseConfig does not change its input and gives a fresh result each call", () => {
  const env = Object.freeze({ KEVENTS_SINKS: "null" });
  const first = parseConfig({ env });
  first.sinks.push("stdout");
  assert.deepEqual(parseConfig({ env }).sinks, ["null"]);
  const defaults = parseConfig({ env: {} });
  defaults.sinks.push("null");
  defaults.warnings.push("x");
  assert.deepEqual(parseConfig({ env: {} }), DEFAULTS);
});

Deno.test("the key table has one row per setting, each read from its own key and variable", () => {
  const fileKeys = CONFIG_KEYS.map((k) => k.fileKey);
  const envVars = CONFIG_KEYS.map((k) => k.envVar);
  const fields = CONFIG_KEYS.map((k) => k.field);
  assert.equal(new Set(fileKeys).size, fileKeys.length);
  assert.equal(new Set(envVars).size, envVars.length);
  assert.equal(new Set(fields).size, fields.length);
  for (const spec of CONFIG_KEYS) {
    assert.equal(spec.fileKey, spec.fileKey.toLowerCase());
    // As viper binds them: upper case, a dotted key's dots as underscores.
    const upper = spec.fileKey.toUpperCase().replaceAll(".", "_");
    assert.ok(
      spec.envVar === `DD_${upper}` || spec.envVar === upper,
      `${spec.envVar} does not follow ${spec.fileKey}`,
    );
  }
});

Deno.test("configFileCandidates", async (t) => {
  const cases: [
    string,
    string | undefined,
    Record<string, string>,
    ReturnType<
      typeof configFileCandidates
    >,
  ][] = [
    [
      "without --config or DD_CONF_PATH, ./datadog.yaml if present",
      undefined,
      {},
      { paths: ["datadog.yaml"], required: false },
    ],
    [
      "--config naming a .yaml file is required",
      "/etc/kevents/datadog.yaml",
      {},
      { paths: ["/etc/kevents/datadog.yaml"], required: true },
    ],
    [
      "--config naming a .yml file is a file too",
      "conf.yml",
      {},
      { paths: ["conf.yml"], required: true },
    ],
    [
      "--config beats DD_CONF_PATH",
      "a.yaml",
      { DD_CONF_PATH: "b.yaml" },
      { paths: ["a.yaml"], required: true },
    ],
    [
      "DD_CONF_PATH naming a directory looks for datadog.yaml in it, then at the path itself",
      undefined,
      { DD_CONF_PATH: "/etc/datadog-agent" },
      { paths: ["/etc/datadog-agent/datadog.yaml", "/etc/datadog-agent"], required: true },
    ],
    [
      "a trailing slash is not doubled",
      "/etc/datadog-agent/",
      {},
      { paths: ["/etc/datadog-agent/datadog.yaml", "/etc/datadog-agent/"], required: true },
    ],
    [
      "DD_CONF_PATH naming a .yaml file is that file",
      undefined,
      { DD_CONF_PATH: "/conf/kevents.yaml" },
      { paths: ["/conf/kevents.yaml"], required: true },
    ],
    [
      "an empty --config or DD_CONF_PATH counts as not given",
      "",
      { DD_CONF_PATH: "" },
      { paths: ["datadog.yaml"], required: false },
    ],
    [
      "an empty --config falls through to DD_CONF_PATH",
      "",
      { DD_CONF_PATH: "x.yaml" },
      { paths: ["x.yaml"], required: true },
    ],
  ];
  for (const [name, flag, env, expected] of cases) {
    await t.step(name, () => {
      assert.deepEqual(configFileCandidates(flag, env), expected);
    });
  }
});

// ---- lock kinds ------------------------------------------------------------------

/** The ConfigError message parseConfig throws for `input`. */
function configErrorOf(input: ConfigInput): string {
  try {
    parseConfig(input);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
    return e.message;
  }
  assert.fail("parseConfig accepted it");
}

const RESOURCE_RULE =
  'must be "lease", "configmap" or "endpoints" (or "leases", "configmaps"), in any case';

Deno.test("leader_election_default_resource picks what the election locks", async (t) => {
  await t.step("a Lease by default", () => {
    assert.equal(parseConfig(input({})).leaderElectionResource, "lease");
  });

  await t.step("the file sets it and the environment wins", () => {
    const file = "leader_election_default_resource: configmap\n";
    assert.equal(parseConfig(input({}, file)).leaderElectionResource, "configmap");
    const env = { DD_LEADER_ELECTION_DEFAULT_RESOURCE: "endpoints" };
    assert.equal(parseConfig(input(env, file)).leaderElectionResource, "endpoints");
  });

  await t.step("the Agent's spellings, in any case, trimmed", () => {
    const spellings: [string, string][] = [
      ["lease", "lease"],
      ["leases", "lease"],
      ["Lease", "lease"],
      ["configmap", "configmap"],
      [" ConfigMaps ", "configmap"],
      ["ENDPOINTS", "endpoints"],
    ];
    for (const [spelling, expected] of spellings) {
      const env = { DD_LEADER_ELECTION_DEFAULT_RESOURCE: spelling };
      assert.equal(parseConfig(input(env)).leaderElectionResource, expected, spelling);
    }
  });

  await t.step("anything else is refused naming the rule", () => {
    for (const bad of ["", "endpoint", "secret", "lease,configmap"]) {
      assert.equal(
        configErrorOf(input({ DD_LEADER_ELECTION_DEFAULT_RESOURCE: bad })),
        `Cannot parse leader_election_default_resource ${JSON.stringify(bad)} ` +
          `(env DD_LEADER_ELECTION_DEFAULT_RESOURCE): ${RESOURCE_RULE}`,
      );
    }
  });

  await t.step("every kind uses leader_lease_name, datadog-leader-election by default", () => {
    for (const kind of ["lease", "configmap", "endpoints"]) {
      const env = { DD_LEADER_ELECTION_DEFAULT_RESOURCE: kind };
      assert.equal(parseConfig(input(env)).leaseName, "datadog-leader-election");
      const named = { ...env, DD_LEADER_LEASE_NAME: "my-lock" };
      assert.equal(parseConfig(input(named)).leaseName, "my-lock");
    }
  });

  await t.step("an annotation lock needs renewals more than a second apart", () => {
    const env = { DD_LEADER_ELECTION_DEFAULT_RESOURCE: "configmap" };
    assert.equal(
      configErrorOf(input({ ...env, KEVENTS_LEASE_DURATION_MS: "4003" })),
      'Cannot parse kevents_lease_duration_ms "4003" (env KEVENTS_LEASE_DURATION_MS): with ' +
        "leader_election_default_resource configmap (env DD_LEADER_ELECTION_DEFAULT_RESOURCE) " +
        "the retry period (lease / 4, here 1000 ms) must be more than 1000 ms, as the lock's " +
        "record has whole-second times: use a lease of at least 4004 ms",
    );
    const endpoints = { DD_LEADER_ELECTION_DEFAULT_RESOURCE: "endpoints" };
    assert.match(
      configErrorOf(input({ ...endpoints, KEVENTS_LEASE_DURATION_MS: "1000" })),
      /here 250 ms\) must be more than 1000 ms/,
    );
    const ok = parseConfig(input({ ...env, KEVENTS_LEASE_DURATION_MS: "4004" }));
    assert.equal(ok.timings.retryPeriodMs, 1001);
    // A Lease has MicroTime times: a 1 s lease stays allowed.
    assert.equal(
      parseConfig(input({ KEVENTS_LEASE_DURATION_MS: "1000" })).timings.retryPeriodMs,
      250,
    );
  });

  await t.step("a ConfigMap lock cannot be the checkpoint ConfigMap", () => {
    const env = { DD_LEADER_ELECTION_DEFAULT_RESOURCE: "configmap" };
    assert.equal(
      configErrorOf(input(env, "leader_lease_name: datadogtoken\n")),
      'Cannot use the ConfigMap "datadogtoken" both as the leader-election lock ' +
        `(leader_lease_name, ${PATH} line 1; leader_election_default_resource configmap, ` +
        "env DD_LEADER_ELECTION_DEFAULT_RESOURCE) and as the event checkpoint " +
        "(kubernetes_event_token_configmap, default): each write to one would make the other's " +
        "compare-and-swap fail; give them different names",
    );
    // Other kinds live in other resources: the same name does not collide.
    const endpoints = { DD_LEADER_ELECTION_DEFAULT_RESOURCE: "endpoints" };
    assert.equal(
      parseConfig(input(endpoints, "leader_lease_name: datadogtoken\n")).leaseName,
      "datadogtoken",
    );
  });
});

// ---- Agent 5 compatibility ------------------------------------------------------

const AGENT5_PATH = "/etc/dd-agent/conf.d/kubernetes.yaml";

/** An input with an Agent 5 kubernetes.yaml, and optionally a datadog.yaml. */
function agent5Input(
  agent5Text: string,
  env: Record<string, string> = {},
  fileText?: string,
): ConfigInput {
  return { ...input(env, fileText), agent5File: { path: AGENT5_PATH, text: agent5Text } };
}

/** An Agent 5 kubernetes.yaml whose first instance holds `lines` (already indented). */
function kubernetesYaml(...lines: string[]): string {
  return ["init_config:", "", "instances:", "  - port: 4194", ...lines, ""].join("\n");
}

const CANDIDATE_INSTEAD = "leader_election / DD_LEADER_ELECTION and collect_kubernetes_events / " +
  "DD_COLLECT_KUBERNETES_EVENTS";
const LEASE_INSTEAD = "leader_lease_duration / DD_LEADER_LEASE_DURATION";

Deno.test("Agent 5 leader-election settings are read below the Agent 6 ones, with a deprecation warning", async (t) => {
  await t.step(
    "leader_candidate under instances[0] turns on leader election and event collection",
    () => {
      const config = parseConfig(agent5Input(kubernetesYaml("    leader_candidate: true")));
      assert.deepEqual(config, {
        ...DEFAULTS,
        collectEvents: true,
        leaderElection: true,
        warnings: [
          `Deprecated Agent 5 setting leader_candidate (${AGENT5_PATH} line 5): use ` +
          `${CANDIDATE_INSTEAD} instead`,
        ],
      });
    },
  );

  await t.step("leader_lease_duration under instances[0] sets the lease, with its timings", () => {
    const config = parseConfig(agent5Input(kubernetesYaml("    leader_lease_duration: 600")));
    assert.equal(config.leaseDurationSeconds, 600);
    assert.deepEqual(config.timings, {
      leaseDurationMs: 600_000,
      renewDeadlineMs: 300_000,
      retryPeriodMs: 150_000,
      requestTimeoutMs: 10_000,
    });
    assert.deepEqual(config.warnings, [
      `Deprecated Agent 5 setting leader_lease_duration (${AGENT5_PATH} line 5): use ` +
      `${LEASE_INSTEAD} instead`,
    ]);
  });

  await t.step(
    "KUBERNETES_LEADER_CANDIDATE and KUBERNETES_LEADER_LEASE_DURATION do the same",
    () => {
      const config = parseConfig(input({
        KUBERNETES_LEADER_CANDIDATE: "yes",
        KUBERNETES_LEADER_LEASE_DURATION: "45",
      }));
      assert.equal(config.leaderElection, true);
      assert.equal(config.collectEvents, true);
      assert.equal(config.leaseDurationSeconds, 45);
      assert.deepEqual(config.warnings, [
        `Deprecated Agent 5 setting KUBERNETES_LEADER_CANDIDATE: use ${CANDIDATE_INSTEAD} instead`,
        `Deprecated Agent 5 setting KUBERNETES_LEADER_LEASE_DURATION: use ${LEASE_INSTEAD} instead`,
      ]);
    },
  );

  await t.step("not a candidate changes nothing but is still deprecated", () => {
    const config = parseConfig(agent5Input(kubernetesYaml("    leader_candidate: false")));
    assert.deepEqual(config, {
      ...DEFAULTS,
      warnings: [
        `Deprecated Agent 5 setting leader_candidate (${AGENT5_PATH} line 5): use ` +
        `${CANDIDATE_INSTEAD} instead`,
      ],
    });
  });

  await t.step("an empty variable is unset, as the Agent 5 entrypoint's test made it", () => {
    assert.deepEqual(
      parseConfig(input({ KUBERNETES_LEADER_CANDIDATE: "", KUBERNETES_LEADER_LEASE_DURATION: "" })),
      DEFAULTS,
    );
  });

  await t.step("the variable wins over the Agent 5 file, which it was written into", () => {
    const config = parseConfig(agent5Input(
      kubernetesYaml("    leader_candidate: true", "    leader_lease_duration: 600"),
      { KUBERNETES_LEADER_CANDIDATE: "false", KUBERNETES_LEADER_LEASE_DURATION: "120" },
    ));
    assert.equal(config.leaderElection, false);
    assert.equal(config.collectEvents, false);
    assert.equal(config.leaseDurationSeconds, 120);
    assert.deepEqual(config.warnings, [
      `Deprecated Agent 5 setting leader_candidate (${AGENT5_PATH} line 5): use ` +
      `${CANDIDATE_INSTEAD} instead; ignored: KUBERNETES_LEADER_CANDIDATE is set`,
      `Deprecated Agent 5 setting KUBERNETES_LEADER_CANDIDATE: use ${CANDIDATE_INSTEAD} instead`,
      `Deprecated Agent 5 setting leader_lease_duration (${AGENT5_PATH} line 6): use ` +
      `${LEASE_INSTEAD} instead; ignored: KUBERNETES_LEADER_LEASE_DURATION is set`,
      `Deprecated Agent 5 setting KUBERNETES_LEADER_LEASE_DURATION: use ${LEASE_INSTEAD} instead`,
    ]);
  });

  await t.step("datadog.yaml and the Agent 6 variables win over every Agent 5 setting", () => {
    const agent5 = kubernetesYaml("    leader_candidate: true", "    leader_lease_duration: 600");
    const fromFile = parseConfig(agent5Input(agent5, {}, "leader_lease_duration: 90\n"));
    assert.equal(fromFile.leaseDurationSeconds, 90);
    assert.equal(fromFile.leaderElection, true);
    assert.equal(
      fromFile.warnings[1],
      `Deprecated Agent 5 setting leader_lease_duration (${AGENT5_PATH} line 6): use ` +
        `${LEASE_INSTEAD} instead; leader_lease_duration is set (${PATH} line 1) wins`,
    );
    const fromEnv = parseConfig(agent5Input(agent5, {
      DD_LEADER_LEASE_DURATION: "75",
      KUBERNETES_LEADER_LEASE_DURATION: "120",
    }));
    assert.equal(fromEnv.leaseDurationSeconds, 75);
    assert.equal(fromEnv.timings.leaseDurationMs, 75_000);
  });

  await t.step("leader_election: false makes a candidate no candidate, collecting nothing", () => {
    const config = parseConfig(agent5Input(kubernetesYaml("    leader_candidate: true"), {
      DD_LEADER_ELECTION: "false",
    }));
    assert.equal(config.leaderElection, false);
    assert.equal(config.collectEvents, false);
    assert.deepEqual(config.warnings, [
      `Deprecated Agent 5 setting leader_candidate (${AGENT5_PATH} line 5): use ` +
      `${CANDIDATE_INSTEAD} instead; leader_election is set (env DD_LEADER_ELECTION) wins`,
    ]);
  });

  await t.step("collect_kubernetes_events: false keeps collection off for a candidate", () => {
    const config = parseConfig(agent5Input(
      kubernetesYaml("    leader_candidate: true"),
      {},
      "collect_kubernetes_events: false\n",
    ));
    assert.equal(config.leaderElection, true);
    assert.equal(config.collectEvents, false);
    assert.match(config.warnings[0]!, /; collect_kubernetes_events is set \(.* line 1\) wins$/);
  });

  await t.step("only the first instance counts; a file without instances sets nothing", () => {
    const second = kubernetesYaml("  - port: 4195", "    leader_candidate: true");
    assert.deepEqual(parseConfig(agent5Input(second)), DEFAULTS);
    for (
      const text of ["", "init_config:\n", "instances:\n", "instances: []\n", "instances:\n  -\n"]
    ) {
      assert.deepEqual(parseConfig(agent5Input(text)), DEFAULTS, JSON.stringify(text));
    }
  });

  await t.step("keys match exactly, as in a Python dictionary; top-level keys are not read", () => {
    assert.deepEqual(
      parseConfig(agent5Input(kubernetesYaml("    Leader_Candidate: true"))),
      DEFAULTS,
    );
    assert.deepEqual(parseConfig(agent5Input("leader_candidate: true\n")), DEFAULTS);
  });

  await t.step("a bad Agent 5 value stops the start, named after its Agent 5 key", () => {
    assert.equal(
      configErrorOf(agent5Input(kubernetesYaml("    leader_lease_duration: 20"))),
      `Cannot parse leader_lease_duration "20" (${AGENT5_PATH} line 5): ${LEASE_RULE}`,
    );
    assert.equal(
      configErrorOf(input({ KUBERNETES_LEADER_CANDIDATE: "maybe" })),
      `Cannot parse leader_candidate "maybe" (env KUBERNETES_LEADER_CANDIDATE): ${BOOL_RULE}`,
    );
    // Even when an Agent 6 setting wins over it.
    assert.equal(
      configErrorOf(agent5Input(kubernetesYaml("    leader_lease_duration: 20"), {
        DD_LEADER_LEASE_DURATION: "60",
      })),
      `Cannot parse leader_lease_duration "20" (${AGENT5_PATH} line 5): ${LEASE_RULE}`,
    );
  });

  await t.step("a malformed Agent 5 file stops the start naming the file", () => {
    assert.equal(
      configErrorOf(agent5Input("instances:\n  port: 4194\n")),
      `Cannot parse ${AGENT5_PATH}: instances must be a list of mappings (the check's ` +
        "instances), found a mapping at line 2",
    );
    assert.equal(
      configErrorOf(agent5Input("instances:\n  - true\n")),
      `Cannot parse ${AGENT5_PATH}: instances must be a list of mappings (the check's ` +
        'instances), found the value "true" at line 2',
    );
    assert.match(
      configErrorOf(agent5Input("instances: [\n")),
      new RegExp(`^Cannot parse ${AGENT5_PATH}: YAML syntax error at line \\d+, column \\d+: `),
    );
    assert.match(configErrorOf(agent5Input("- a\n")), /the top level must be a mapping/);
  });
});

Deno.test("agent5FileCandidates looks beside datadog.yaml, then in the Agent 5's place", async (t) => {
  const cases: [string, string | undefined, string[]][] = [
    ["without a datadog.yaml, only the Agent 5's place", undefined, [AGENT5_FILE]],
    [
      "conf.d beside an absolute datadog.yaml first",
      "/etc/datadog-agent/datadog.yaml",
      ["/etc/datadog-agent/conf.d/kubernetes.yaml", AGENT5_FILE],
    ],
    [
      "conf.d in the working directory for ./datadog.yaml",
      "datadog.yaml",
      ["conf.d/kubernetes.yaml", AGENT5_FILE],
    ],
    ["no path twice", "/etc/dd-agent/datadog.yaml", [AGENT5_FILE]],
  ];
  for (const [name, path, expected] of cases) {
    await t.step(name, () => {
      assert.deepEqual(agent5FileCandidates(path), expected);
    });
  }
  await t.step("the Agent 5's place is /etc/dd-agent/conf.d/kubernetes.yaml", () => {
    assert.equal(AGENT5_FILE, "/etc/dd-agent/conf.d/kubernetes.yaml");
  });
});
