/**
 * Specification of event filtering: the Agent's `filtered_event_types` (a
 * deny list of field selectors, a bare word meaning `reason!=word`) sent to
 * the API server, kevents' include/exclude lists split between the server
 * and the pump, and what the checkpoint does with filtered events. Pure
 * tables first, then terms against the fake API server over the network.
 */

import assert from "node:assert/strict";
import type { CoreV1Event } from "@kubernetes/client-node";
import { TOKEN_KEY } from "../../lib/checkpoint/checkpointer.ts";
import { runTerm } from "../../lib/collector.ts";
import { type Config, ConfigError, type ConfigInput, parseConfig } from "../../lib/config/mod.ts";
import {
  checkFieldSelector,
  parseFieldSelector,
  SelectorError,
} from "../../lib/fake_apiserver/selectors.ts";
import {
  type FakeApiServer,
  type KubeObject,
  startFakeApiServer,
} from "../../lib/fake_apiserver/mod.ts";
import {
  agentFieldSelector,
  agentFilterTerm,
  checkFilteredEventTypes,
  escapeFieldValue,
  type EventFilterSettings,
  type EventMatch,
  FieldSelectorError,
  FilteredEventTypeError,
  filtersAnything,
  NO_EVENT_FILTERS,
  parseEventFieldSelector,
  planEventFilters,
} from "../../lib/pump/filters.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import type { EventRecord, Sink } from "../../lib/sinks/sink.ts";

// ---- the Agent's filtered_event_types ------------------------------------------

Deno.test("filtered_event_types is read as the Agent reads it", async (t) => {
  const cases: [string, string[], string][] = [
    ["no entries: no selector", [], ""],
    ["a bare word is a reason to leave out", ["FailedScheduling"], "reason!=FailedScheduling"],
    ["an entry with an operator is used as written", ["type!=Normal"], "type!=Normal"],
    [
      "== and = are kept as written",
      ["type==Warning", "type=Warning"],
      "type==Warning,type=Warning",
    ],
    [
      "entries are joined with commas in their order, bare words among selectors",
      ["involvedObject.kind!=Pod", "BackOff", "type!=Normal"],
      "involvedObject.kind!=Pod,reason!=BackOff,type!=Normal",
    ],
    [
      "an entry holding several terms stays one entry",
      ["reason!=A,reason!=B", "C"],
      "reason!=A,reason!=B,reason!=C",
    ],
    // The Agent splits on "=" only: a "!" alone does not make an operator.
    ["a bare word is any text without =", ["type!Normal"], "reason!=type!Normal"],
    ["an escaped = still counts as an =", ["reason!=a\\=b"], "reason!=a\\=b"],
  ];
  for (const [name, entries, selector] of cases) {
    await t.step(name, () => {
      assert.equal(agentFieldSelector(entries), selector);
      assert.deepEqual(entries.map(agentFilterTerm).join(","), selector);
    });
  }
});

Deno.test("field selectors follow kube-apiserver's grammar for events", async (t) => {
  await t.step("accepted selectors and their terms", () => {
    const cases: [string, ReturnType<typeof parseEventFieldSelector>][] = [
      ["", []],
      ["type=Warning", [{ field: "type", operator: "=", value: "Warning" }]],
      ["type==Warning", [{ field: "type", operator: "=", value: "Warning" }]],
      [
        "type!=Normal,involvedObject.kind!=Pod",
        [
          { field: "type", operator: "!=", value: "Normal" },
          { field: "involvedObject.kind", operator: "!=", value: "Pod" },
        ],
      ],
      ["reason!=a\\,b\\=c\\\\d", [{ field: "reason", operator: "!=", value: "a,b=c\\d" }]],
      ["reason!=", [{ field: "reason", operator: "!=", value: "" }]],
      // The first operator splits: the rest is the value.
      ["source=a!b", [{ field: "source", operator: "=", value: "a!b" }]],
      ["type=Normal,,", [{ field: "type", operator: "=", value: "Normal" }]],
      ["=", []],
      ["metadata.namespace=kube-system", [
        { field: "metadata.namespace", operator: "=", value: "kube-system" },
      ]],
    ];
    for (const [selector, terms] of cases) {
      assert.deepEqual(parseEventFieldSelector(selector), terms, selector);
    }
  });

  await t.step("rejected selectors say why", () => {
    const cases: [string, RegExp][] = [
      ["type!=Normal,Foo", /the term "Foo" has no operator \(=, == or !=\)/],
      ["reason=a=b", /unescaped "=" in the value "a=b"/],
      ["reason=a\\b", /invalid escape sequence "\\b"/],
      ["reason=a\\", /the value "a\\\\" ends in "\\"/],
      ["involvedObject.knd!=Pod", /cannot select events on the field "involvedObject.knd"/],
      ["type !=Normal", /cannot select events on the field "type "/],
      ["status.phase=Running", /cannot select events on the field "status.phase"/],
    ];
    for (const [selector, detail] of cases) {
      assert.throws(
        () => parseEventFieldSelector(selector),
        (e) => {
          assert.ok(e instanceof FieldSelectorError, `${selector}: ${e}`);
          assert.equal(e.selector, selector);
          assert.match(e.detail, detail);
          assert.equal(
            e.message,
            `Cannot parse field selector ${JSON.stringify(selector)}: ${e.detail}`,
          );
          return true;
        },
      );
    }
  });

  await t.step("accepts exactly what the fake API server (the real server's rules) accepts", () => {
    const corpus = [
      "",
      ",",
      "=",
      "!=",
      "type",
      "type=",
      "type=Normal",
      "type==Normal",
      "type!=Normal",
      "type=!Normal",
      "type=Nor=mal",
      "type=Nor\\=mal",
      "type=Nor\\,mal",
      "type=Nor\\mal",
      "type=Normal\\",
      "type=Normal\\\\",
      "=Normal",
      "!=Normal",
      "type=Normal,reason",
      "type=Normal,,reason=X",
      "reason!=BackOff,reason!=Killing",
      "source=kubelet",
      "reportingComponent=kubelet",
      "metadata.name=x",
      "metadata.namespace!=kube-system",
      "involvedObject.fieldPath=spec.containers{app}",
      "involvedObject.uid!=",
      "spec.nodeName=n1",
      "Type=Normal",
      " type=Normal",
      "reason!=type!Normal",
    ];
    for (const selector of corpus) {
      let server: string | undefined;
      try {
        checkFieldSelector("events", parseFieldSelector(selector));
      } catch (e) {
        if (!(e instanceof SelectorError)) throw e;
        server = e.message;
      }
      let ours: string | undefined;
      try {
        parseEventFieldSelector(selector);
      } catch (e) {
        if (!(e instanceof FieldSelectorError)) throw e;
        ours = e.message;
      }
      assert.equal(
        ours === undefined,
        server === undefined,
        `${JSON.stringify(selector)}: server says ${server ?? "ok"}, kevents says ${ours ?? "ok"}`,
      );
    }
  });

  await t.step("escaped values read back as written", () => {
    for (const value of ["plain", "a,b", "a=b", "a\\b", "\\,=", ""]) {
      const [term] = parseEventFieldSelector(`reason=${escapeFieldValue(value)}`);
      assert.equal(term?.value, value);
    }
  });
});

Deno.test("checkFilteredEventTypes names the entry the API server would reject", () => {
  checkFilteredEventTypes(["type!=Normal", "BackOff", "involvedObject.kind!=Pod,reason!=X"]);
  assert.throws(
    () => checkFilteredEventTypes(["BackOff", "type!=Normal,Foo", "reason=a=b"]),
    (e) => {
      assert.ok(e instanceof FilteredEventTypeError);
      assert.equal(e.entry, "type!=Normal,Foo");
      assert.equal(e.detail, 'the term "Foo" has no operator (=, == or !=)');
      assert.ok(e.cause instanceof FieldSelectorError);
      return true;
    },
  );
  // A bare word becomes reason!=WORD, whose value must be a valid one.
  assert.throws(
    () => checkFilteredEventTypes(["a,b"]),
    (e) => e instanceof FilteredEventTypeError && e.entry === "a,b",
  );
});

// ---- settings ------------------------------------------------------------------

const PATH = "/etc/datadog-agent/datadog.yaml";

function configOf(env: Record<string, string>, fileText?: string): Config {
  const input: ConfigInput = {
    env,
    ...(fileText === undefined ? {} : { file: { path: PATH, text: fileText } }),
  };
  return parseConfig(input);
}

const NONE: EventMatch = { types: [], namespaces: [], reasons: [], kinds: [] };

Deno.test("filter settings are read from the environment and datadog.yaml", async (t) => {
  await t.step("none set: no eventFilters, every event", () => {
    const config = configOf({});
    assert.equal(config.eventFilters, undefined);
    assert.equal("eventFilters" in config, false);
    assert.equal(filtersAnything(NO_EVENT_FILTERS), false);
    assert.deepEqual(planEventFilters(NO_EVENT_FILTERS), {
      fieldSelector: undefined,
      filter: undefined,
    });
  });

  await t.step("empty values set nothing", () => {
    const config = configOf(
      { DD_FILTERED_EVENT_TYPES: "", KEVENTS_INCLUDE_TYPES: " " },
      "kevents_exclude_reasons: []\nkevents_include_kinds: ''\n",
    );
    assert.equal(config.eventFilters, undefined);
  });

  await t.step("environment: comma lists, trimmed, duplicates dropped", () => {
    const config = configOf({
      DD_FILTERED_EVENT_TYPES: "type!=Normal, involvedObject.kind!=Pod ,BackOff",
      KEVENTS_INCLUDE_TYPES: "Warning",
      KEVENTS_EXCLUDE_TYPES: "Normal",
      KEVENTS_INCLUDE_NAMESPACES: "default, web,default",
      KEVENTS_EXCLUDE_NAMESPACES: "kube-system",
      KEVENTS_INCLUDE_REASONS: "BackOff,Failed",
      KEVENTS_EXCLUDE_REASONS: "Pulled",
      KEVENTS_INCLUDE_KINDS: "Pod,Node",
      KEVENTS_EXCLUDE_KINDS: "Job",
    });
    assert.deepEqual(config.eventFilters, {
      filteredEventTypes: ["type!=Normal", "involvedObject.kind!=Pod", "BackOff"],
      include: {
        types: ["Warning"],
        namespaces: ["default", "web"],
        reasons: ["BackOff", "Failed"],
        kinds: ["Pod", "Node"],
      },
      exclude: {
        types: ["Normal"],
        namespaces: ["kube-system"],
        reasons: ["Pulled"],
        kinds: ["Job"],
      },
    });
    assert.deepEqual(config.warnings, []);
  });

  await t.step("environment: an escaped comma stays inside its entry", () => {
    const config = configOf({ DD_FILTERED_EVENT_TYPES: "reason!=a\\,b,C" });
    assert.deepEqual(config.eventFilters?.filteredEventTypes, ["reason!=a\\,b", "C"]);
  });

  await t.step("file: YAML lists, one entry per item, several terms in one entry", () => {
    const config = configOf(
      {},
      [
        "filtered_event_types:",
        '  - "type!=Normal,reason!=Killing"',
        "  - FailedMount",
        "kevents_include_namespaces: [payments]",
        "kevents_exclude_kinds:",
        "  - Node",
        "",
      ].join("\n"),
    );
    assert.deepEqual(config.eventFilters, {
      filteredEventTypes: ["type!=Normal,reason!=Killing", "FailedMount"],
      include: { ...NONE, namespaces: ["payments"] },
      exclude: { ...NONE, kinds: ["Node"] },
    });
  });

  await t.step("the environment beats the file", () => {
    const config = configOf(
      { KEVENTS_INCLUDE_REASONS: "Started" },
      "kevents_include_reasons: [Pulled, Created]\n",
    );
    assert.deepEqual(config.eventFilters?.include.reasons, ["Started"]);
  });

  await t.step("values are exact: case is kept", () => {
    const config = configOf({ KEVENTS_INCLUDE_TYPES: "warning" });
    assert.deepEqual(config.eventFilters?.include.types, ["warning"]);
  });

  await t.step("a bare word with a ! is read as a reason, with a warning", () => {
    const config = configOf({ DD_FILTERED_EVENT_TYPES: "type!Normal" });
    assert.deepEqual(config.eventFilters?.filteredEventTypes, ["type!Normal"]);
    assert.deepEqual(config.warnings, [
      'filtered_event_types entry "type!Normal" (env DD_FILTERED_EVENT_TYPES) has no "=": it is ' +
      "read as reason!=type!Normal, leaving out events with that reason; write field!=value to " +
      "filter on a field",
    ]);
  });
});

Deno.test("a bad filter setting stops the start with a ConfigError naming it", async (t) => {
  const rejects = (
    name: string,
    env: Record<string, string>,
    fileText: string | undefined,
    expected: { key: string; value: string; message: string },
  ) =>
    t.step(name, () => {
      assert.throws(() => configOf(env, fileText), (e) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.equal(e.key, expected.key);
        assert.equal(e.value, expected.value);
        assert.equal(e.message, expected.message);
        return true;
      });
    });

  await rejects(
    "an entry with a field events do not have",
    { DD_FILTERED_EVENT_TYPES: "BackOff,involvedObject.knd!=Pod" },
    undefined,
    {
      key: "filtered_event_types",
      value: "involvedObject.knd!=Pod",
      message: 'Cannot parse filtered_event_types entry "involvedObject.knd!=Pod" ' +
        "(env DD_FILTERED_EVENT_TYPES): the API server cannot select events on the field " +
        '"involvedObject.knd" (it can on involvedObject.kind, involvedObject.namespace, ' +
        "involvedObject.name, involvedObject.uid, involvedObject.apiVersion, " +
        "involvedObject.resourceVersion, involvedObject.fieldPath, reason, reportingComponent, " +
        "source, type, metadata.namespace, metadata.name)",
    },
  );
  await rejects(
    "a term without operator inside a file entry",
    {},
    'filtered_event_types:\n  - "type!=Normal,Foo"\n',
    {
      key: "filtered_event_types",
      value: "type!=Normal,Foo",
      message: `Cannot parse filtered_event_types entry "type!=Normal,Foo" (${PATH} line 1): ` +
        'the term "Foo" has no operator (=, == or !=)',
    },
  );
  await rejects(
    "an unescaped = in a value",
    { DD_FILTERED_EVENT_TYPES: "reason=a=b" },
    undefined,
    {
      key: "filtered_event_types",
      value: "reason=a=b",
      message:
        'Cannot parse filtered_event_types entry "reason=a=b" (env DD_FILTERED_EVENT_TYPES): ' +
        'unescaped "=" in the value "a=b" (write "\\=")',
    },
  );
  const entriesRule = "must be a list (comma-separated, or a YAML list in the file) of " +
    "non-empty field selectors on events (field=value or field!=value, e.g. type!=Normal) or " +
    "bare event reasons (X means reason!=X)";
  await rejects("an empty entry", { DD_FILTERED_EVENT_TYPES: "BackOff,,Killing" }, undefined, {
    key: "filtered_event_types",
    value: "BackOff,,Killing",
    message:
      'Cannot parse filtered_event_types "BackOff,,Killing" (env DD_FILTERED_EVENT_TYPES): ' +
      entriesRule,
  });
  await rejects("an empty include item", { KEVENTS_INCLUDE_TYPES: "Normal," }, undefined, {
    key: "kevents_include_types",
    value: "Normal,",
    message: 'Cannot parse kevents_include_types "Normal," (env KEVENTS_INCLUDE_TYPES): ' +
      "must be a list (comma-separated, or a YAML list in the file) of non-empty values",
  });
  await rejects(
    "a namespace that cannot exist",
    {},
    "kevents_exclude_namespaces: [Kube-System]\n",
    {
      key: "kevents_exclude_namespaces",
      value: '["Kube-System"]',
      message: `Cannot parse kevents_exclude_namespaces ["Kube-System"] (${PATH} line 1): ` +
        "must be a list (comma-separated, or a YAML list in the file) of non-empty namespace " +
        "names, each a DNS-1123 label",
    },
  );
});

// ---- include, exclude and the server-side mapping --------------------------------

function settings(
  include: Partial<EventMatch> = {},
  exclude: Partial<EventMatch> = {},
  filteredEventTypes: string[] = [],
): EventFilterSettings {
  return { filteredEventTypes, include: { ...NONE, ...include }, exclude: { ...NONE, ...exclude } };
}

function event(
  type: string | undefined,
  namespace: string,
  reason: string,
  kind: string,
): CoreV1Event {
  return {
    metadata: { name: `${namespace}.${reason}`, namespace },
    involvedObject: { kind, namespace, name: "x" },
    ...(type === undefined ? {} : { type }),
    reason,
  };
}

Deno.test("what can be said as a field selector is sent to the API server", async (t) => {
  const cases: [string, EventFilterSettings, string | undefined, boolean][] = [
    ["nothing set", settings(), undefined, false],
    [
      "filtered_event_types only: server-side only",
      settings({}, {}, ["Normal"]),
      "reason!=Normal",
      false,
    ],
    ["one included type: type=", settings({ types: ["Warning"] }), "type=Warning", true],
    ["one included namespace", settings({ namespaces: ["web"] }), "metadata.namespace=web", true],
    ["one included reason", settings({ reasons: ["BackOff"] }), "reason=BackOff", true],
    ["one included kind", settings({ kinds: ["Pod"] }), "involvedObject.kind=Pod", true],
    [
      "several included values stay client-side",
      settings({ reasons: ["A", "B"] }),
      undefined,
      true,
    ],
    [
      "every excluded value is a != term",
      settings({}, { reasons: ["A", "B"], kinds: ["Node"] }),
      "reason!=A,reason!=B,involvedObject.kind!=Node",
      true,
    ],
    [
      "the Agent's entries first, then includes and excludes per property",
      settings(
        { types: ["Warning"], namespaces: ["a", "b"], kinds: ["Pod"] },
        { namespaces: ["kube-system"], reasons: ["BackOff"] },
        ["involvedObject.kind!=Node", "Killing"],
      ),
      "involvedObject.kind!=Node,reason!=Killing,type=Warning,metadata.namespace!=kube-system," +
      "reason!=BackOff,involvedObject.kind=Pod",
      true,
    ],
    [
      "values are escaped",
      settings({ reasons: ["a,b"] }, { kinds: ["x=y\\z"] }),
      "reason=a\\,b,involvedObject.kind!=x\\=y\\\\z",
      true,
    ],
    [
      "a value given twice is one term",
      settings({ types: ["Normal", "Normal"] }),
      "type=Normal",
      true,
    ],
  ];
  for (const [name, s, selector, hasFilter] of cases) {
    await t.step(name, () => {
      const plan = planEventFilters(s);
      assert.equal(plan.fieldSelector, selector);
      assert.equal(plan.filter !== undefined, hasFilter);
      // Whatever is sent, the server accepts.
      if (selector !== undefined) checkFieldSelector("events", parseFieldSelector(selector));
    });
  }
  await t.step("a bad filtered_event_types entry is refused", () => {
    assert.throws(() => planEventFilters(settings({}, {}, ["foo=bar"])), FilteredEventTypeError);
  });
});

Deno.test("include and exclude: exact matches, every list must hold, exclude wins", async (t) => {
  const events = {
    podWarning: event("Warning", "web", "BackOff", "Pod"),
    podNormal: event("Normal", "web", "Started", "Pod"),
    nodeWarning: event("Warning", "default", "NodeNotReady", "Node"),
    systemNormal: event("Normal", "kube-system", "Pulled", "Pod"),
    noType: event(undefined, "web", "Custom", "Deployment"),
  };
  type Name = keyof typeof events;
  const cases: [string, EventFilterSettings, Name[]][] = [
    ["no lists: everything", settings(), Object.keys(events) as Name[]],
    ["include types", settings({ types: ["Warning"] }), ["podWarning", "nodeWarning"]],
    ["matches are case-sensitive", settings({ types: ["warning"] }), []],
    ["include several reasons", settings({ reasons: ["BackOff", "Pulled"] }), [
      "podWarning",
      "systemNormal",
    ]],
    ["every non-empty include must hold", settings({ types: ["Warning"], kinds: ["Pod"] }), [
      "podWarning",
    ]],
    ["exclude namespaces", settings({}, { namespaces: ["kube-system", "web"] }), ["nodeWarning"]],
    ["exclude wins over include", settings({ types: ["Warning"] }, { kinds: ["Node"] }), [
      "podWarning",
    ]],
    [
      "the same value included and excluded is left out",
      settings({ types: ["Normal"] }, {
        types: ["Normal"],
      }),
      [],
    ],
    [
      "a missing type is the empty value: not included",
      settings({ types: ["Normal", "Warning"] }),
      [
        "podWarning",
        "podNormal",
        "nodeWarning",
        "systemNormal",
      ],
    ],
    ["a missing type is not excluded by a named type", settings({}, { types: ["Normal"] }), [
      "podWarning",
      "nodeWarning",
      "noType",
    ]],
  ];
  for (const [name, s, kept] of cases) {
    await t.step(name, () => {
      const { filter } = planEventFilters(s);
      const delivered = (Object.keys(events) as Name[]).filter((n) =>
        filter === undefined || filter(events[n])
      );
      assert.deepEqual(delivered, kept);
    });
  }
  await t.step("the predicate agrees with the selector sent for single values", () => {
    // With one include and excludes, the server and the predicate keep the same events.
    const s = settings({ types: ["Warning"] }, { namespaces: ["web"] });
    const { fieldSelector, filter } = planEventFilters(s);
    const selector = parseFieldSelector(fieldSelector ?? "");
    for (const e of Object.values(events)) {
      const fields = {
        "type": e.type ?? "",
        "metadata.namespace": e.metadata.namespace ?? "",
        "reason": e.reason ?? "",
        "involvedObject.kind": e.involvedObject.kind ?? "",
      };
      assert.equal(filter!(e), selector.matches(fields), JSON.stringify(fields));
    }
  });
});

// ---- against the fake API server ---------------------------------------------------

const BOUND_MS = 20_000;

/** Resolves once `condition` holds, re-checked on every store change and every few ms. */
function waitUntil(server: FakeApiServer, what: string, condition: () => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!condition()) return;
      finish();
      resolve();
    };
    const unsubscribe = server.store.subscribe(check);
    const poll = setInterval(check, 5);
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`Gave up after ${BOUND_MS} ms waiting until ${what}`));
    }, BOUND_MS);
    const finish = () => {
      unsubscribe();
      clearInterval(poll);
      clearTimeout(timer);
    };
    check();
  });
}

/** An in-memory sink. */
class RecordingSink implements Sink {
  readonly name = "recording";
  readonly records: EventRecord[] = [];

  send(batch: readonly EventRecord[], signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    this.records.push(...batch);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The `fieldSelector` of each events list and watch the server receives, until disposed. */
function recordEventRequests(server: FakeApiServer):
  & { requests: { watch: boolean; fieldSelector: string | null }[] }
  & Disposable {
  const requests: { watch: boolean; fieldSelector: string | null }[] = [];
  const subscription = server.onRequest((r) => {
    const url = new URL(r.path, "http://x");
    if (r.method !== "GET" || !url.pathname.endsWith("/events")) return;
    requests.push({
      watch: url.searchParams.has("watch"),
      fieldSelector: url.searchParams.get("fieldSelector"),
    });
  });
  return { requests, [Symbol.dispose]: () => subscription[Symbol.dispose]() };
}

/** A running term: what it delivered and what it left out; dispose stops it. */
interface RunningTerm extends AsyncDisposable {
  sink: RecordingSink;
  filtered: CoreV1Event[];
}

/** Runs one term until disposed; counts the events the filter left out. */
function startTerm(server: FakeApiServer, env: Record<string, string>): RunningTerm {
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig({ user: "admin" }));
  const client = new KubeClient(kc);
  const config = parseConfig({
    env: {
      KUBERNETES: "1",
      KEVENTS_LEASE_DURATION_MS: "30000",
      KEVENTS_CHECKPOINT_INTERVAL_MS: "50",
      KEVENTS_CHECKPOINT_IDLE_INTERVAL_MS: "50",
      ...env,
    },
  });
  const sink = new RecordingSink();
  const filtered: CoreV1Event[] = [];
  const controller = new AbortController();
  const done = runTerm(
    {
      client,
      config,
      identity: "a",
      sinks: [sink],
      observer: { filtered: (e) => void filtered.push(e) },
    },
    { identity: "a", transitions: 0, signal: controller.signal },
  );
  return {
    sink,
    filtered,
    async [Symbol.asyncDispose]() {
      controller.abort(new Error("Test over"));
      await done;
      await client.close();
    },
  };
}

let seq = 0;

/** Creates an event; `fields` override the defaults (Normal, Started, a Pod in `namespace`). */
function createEvent(
  server: FakeApiServer,
  namespace: string,
  fields: { type?: string; reason?: string; kind?: string } = {},
): KubeObject {
  const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  return server.create("events", namespace, {
    metadata: { name: `ev-${++seq}` },
    involvedObject: { apiVersion: "v1", kind: fields.kind ?? "Pod", namespace, name: "web-1" },
    reason: fields.reason ?? "Started",
    message: "filters test",
    type: fields.type ?? "Normal",
    count: 1,
    firstTimestamp: now,
    lastTimestamp: now,
    source: { component: "filters-test" },
  });
}

const keyOf = (o: KubeObject) => `${o.metadata.uid}/${o.metadata.resourceVersion}`;

function checkpointRv(server: FakeApiServer): string | undefined {
  const data = server.get("configmaps", "default", "datadogtoken")?.data as
    | Record<string, string>
    | undefined;
  return data?.[TOKEN_KEY];
}

function watching(server: FakeApiServer): boolean {
  return server.requestLog.count({ identity: "admin", verb: "watch", resource: "events" }) > 0;
}

Deno.test("filtered_event_types is applied by the API server on every list and watch", async () => {
  await using server = await startFakeApiServer();
  using log = recordEventRequests(server);
  const kinds = [
    { type: "Normal" },
    { type: "Warning", reason: "BackOff" },
    { type: "Warning", reason: "Failed" },
    { type: "Warning", reason: "FailedScheduling", kind: "Node" },
  ];
  const before = kinds.map((k) => createEvent(server, "default", k));
  // Not Normal, not BackOff, not about a Node: only the "Failed" events pass.
  const env = {
    DD_FILTERED_EVENT_TYPES: "type!=Normal,BackOff,involvedObject.kind!=Node",
    KEVENTS_BACKFILL: "true",
  };
  const expectedSelector = "type!=Normal,reason!=BackOff,involvedObject.kind!=Node";
  {
    await using term = startTerm(server, env);
    await waitUntil(server, "the term watches", () => watching(server));
    const after = kinds.map((k) => createEvent(server, "default", k));
    // One more that passes, last: once it is in, everything before it was seen.
    const last = createEvent(server, "default", { type: "Warning", reason: "Failed" });
    await waitUntil(
      server,
      `the checkpoint reaches ${last.metadata.resourceVersion}`,
      () => checkpointRv(server) === last.metadata.resourceVersion,
    );
    assert.deepEqual(
      term.sink.records.map((r) => r.key).sort(),
      [before[2]!, after[2]!, last].map(keyOf).sort(),
      "only the events the selector passes",
    );
    assert.equal(term.filtered.length, 0, "the pump never saw the others");
  }
  const lists = log.requests.filter((r) => !r.watch);
  const watches = log.requests.filter((r) => r.watch);
  assert.ok(lists.length >= 1 && watches.length >= 1, JSON.stringify(log.requests));
  for (const r of log.requests) assert.equal(r.fieldSelector, expectedSelector);
});

Deno.test("include/exclude: single values go to the server, several stay in the pump; the checkpoint moves past filtered events", async () => {
  await using server = await startFakeApiServer();
  using log = recordEventRequests(server);
  const env = {
    KEVENTS_INCLUDE_TYPES: "Normal", // server: type=Normal
    KEVENTS_EXCLUDE_NAMESPACES: "kube-system", // server: metadata.namespace!=kube-system
    KEVENTS_INCLUDE_REASONS: "Started,Pulled", // several: in the pump
    KEVENTS_BACKFILL: "true",
  };
  const mixed = () =>
    [
      { ns: "default", reason: "Started" }, // delivered
      { ns: "default", reason: "Killing" }, // filtered in the pump
      { ns: "kube-system", reason: "Started" }, // filtered by the server
      { ns: "default", reason: "BackOff", type: "Warning" }, // filtered by the server
      { ns: "kube-public", reason: "Pulled" }, // delivered
      { ns: "kube-public", reason: "Created" }, // filtered in the pump
    ].map((e) => createEvent(server, e.ns, e));
  const before = mixed();
  await using term = startTerm(server, env);
  await waitUntil(server, "the term watches", () => watching(server));
  const after = mixed();
  // The newest event is one the pump leaves out: the checkpoint must still reach it.
  const last = createEvent(server, "default", { reason: "Killing" });
  await waitUntil(
    server,
    `the checkpoint reaches the filtered event at ${last.metadata.resourceVersion}`,
    () => checkpointRv(server) === last.metadata.resourceVersion,
  );

  const pick = (events: KubeObject[], ...at: number[]) => at.map((i) => events[i]!);
  assert.deepEqual(
    term.sink.records.map((r) => r.key).sort(),
    [...pick(before, 0, 4), ...pick(after, 0, 4)].map(keyOf).sort(),
  );
  assert.deepEqual(
    term.filtered.map((e) => e.metadata.name).sort(),
    [...pick(before, 1, 5), ...pick(after, 1, 5), last].map((e) => e.metadata.name).sort(),
    "counted: the events the pump left out (the server never sent the others)",
  );
  assert.ok(log.requests.some((r) => !r.watch) && log.requests.some((r) => r.watch));
  for (const r of log.requests) {
    assert.equal(r.fieldSelector, "type=Normal,metadata.namespace!=kube-system");
  }
});
