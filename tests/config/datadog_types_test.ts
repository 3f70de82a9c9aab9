/**
 * Specification of the settings that choose which events the Datadog sink
 * sends: `collected_event_types` (JSON text, in the environment and in
 * datadog.yaml), `bundle_unspecified_events`, `filtering_enabled` and
 * `kubernetes_events_source_detection.enabled`; what they refuse, naming
 * key, source, value and rule; and the warnings where they do something
 * other than their names suggest.
 */

import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../lib/config/mod.ts";

const PATH = "/etc/datadog-agent/datadog.yaml";
const DD = { KEVENTS_SINKS: "datadog", DD_API_KEY: "abcdef0123456789abcdef0123456789" };

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

const RULE = 'must be a JSON list of entries {"kind": KIND, "source": COMPONENT, "reasons": ' +
  '[REASON, ...]}, each with "kind" or "source" (non-empty texts, matched exactly) and ' +
  'optionally "reasons" (non-empty texts; none: any reason), no other key; in datadog.yaml ' +
  `the same JSON as one quoted text, e.g. collected_event_types: '[{"kind":"Pod","reasons":["Failed"]}]'`;

Deno.test("collected_event_types is read as JSON from the environment and from datadog.yaml", async (t) => {
  const expected = [
    { kind: "Pod", reasons: ["Failed", "BackOff"] },
    { source: "karpenter", reasons: [] },
    { kind: "Node", source: "node-controller", reasons: ["NodeNotReady"] },
  ];
  const json = '[{"kind":"Pod","reasons":["Failed","BackOff","Failed"]},{"source":"karpenter"},' +
    '{"kind":"Node","source":"node-controller","reasons":["NodeNotReady"]}]';

  await t.step("default: none", () => {
    assert.deepEqual(parseConfig({ env: {} }).datadog.collectedEventTypes, []);
  });

  await t.step("DD_COLLECTED_EVENT_TYPES (reasons given twice are kept once)", () => {
    const config = parseConfig({ env: { DD_COLLECTED_EVENT_TYPES: json } });
    assert.deepEqual(config.datadog.collectedEventTypes, expected);
  });

  await t.step("datadog.yaml, the JSON in one quoted text", () => {
    const config = withFile(`collected_event_types: '${json}'\n`);
    assert.deepEqual(config.datadog.collectedEventTypes, expected);
  });

  await t.step("datadog.yaml, a folded block of JSON", () => {
    const config = withFile(
      "collected_event_types: >-\n" +
        '  [{"kind": "Pod", "reasons": ["Failed", "BackOff"]},\n' +
        '   {"source": "karpenter"},\n' +
        '   {"kind": "Node", "source": "node-controller", "reasons": ["NodeNotReady"]}]\n',
    );
    assert.deepEqual(config.datadog.collectedEventTypes, expected);
  });

  await t.step("the environment wins over the file", () => {
    const config = withFile(`collected_event_types: '${json}'\n`, {
      DD_COLLECTED_EVENT_TYPES: '[{"kind":"Job"}]',
    });
    assert.deepEqual(config.datadog.collectedEventTypes, [{ kind: "Job", reasons: [] }]);
  });

  await t.step('"" and [] are the empty list', () => {
    for (const value of ["", "  ", "[]"]) {
      const config = parseConfig({ env: { DD_COLLECTED_EVENT_TYPES: value } });
      assert.deepEqual(config.datadog.collectedEventTypes, []);
    }
  });
});

Deno.test("a bad collected_event_types is refused naming the key, where it came from, the value and the rule", async (t) => {
  const refused: [string, string][] = [
    ["not JSON", "Pod:Failed"],
    ["not a list", '{"kind":"Pod"}'],
    ["an entry that is not an object", '["Pod"]'],
    ["a key of another case", '[{"Kind":"Pod"}]'],
    ["a misspelt key", '[{"kind":"Pod","reason":["Failed"]}]'],
    ["an empty kind", '[{"kind":"","source":"kubelet"}]'],
    ["a kind that is not a text", '[{"kind":3}]'],
    ["reasons that are not a list", '[{"kind":"Pod","reasons":"Failed"}]'],
    ["an empty reason", '[{"kind":"Pod","reasons":[""]}]'],
  ];
  for (const [name, value] of refused) {
    await t.step(name, () => {
      const e = configError(() => parseConfig({ env: { DD_COLLECTED_EVENT_TYPES: value } }));
      assert.equal(e.key, "collected_event_types");
      assert.equal(e.source, "env DD_COLLECTED_EVENT_TYPES");
      assert.equal(e.value, value);
      assert.equal(e.rule, RULE);
      assert.equal(
        e.message,
        `Cannot parse collected_event_types ${
          JSON.stringify(value)
        } (env DD_COLLECTED_EVENT_TYPES): ${RULE}`,
      );
    });
  }

  await t.step("an entry with neither kind nor source, which the Agent only logs", () => {
    const e = configError(() =>
      withFile(`collected_event_types: '[{"kind":"Pod"},{"reasons":["Failed"]}]'\n`)
    );
    assert.equal(e.key, "collected_event_types");
    assert.equal(e.source, `${PATH} line 1`);
    assert.equal(e.value, '{"reasons":["Failed"]}');
    assert.equal(e.rule, 'each entry needs "kind" or "source"');
    assert.equal(
      e.message,
      `Cannot use collected_event_types entry {"reasons":["Failed"]} (${PATH} line 1): each ` +
        'entry needs "kind" or "source" (the Agent skips such an entry with an error in its ' +
        "log; kevents refuses it)",
    );
  });

  await t.step("the Agent's YAML list of mappings with a bad entry: the entry is named", () => {
    const e = configError(() =>
      withFile("collected_event_types:\n  - kind: Pod\n    reasons: [Failed, 3]\n")
    );
    assert.equal(e.source, `${PATH} line 1`);
    assert.equal(e.rule, RULE);
  });
});

Deno.test("bundle_unspecified_events, filtering_enabled and kubernetes_events_source_detection.enabled", async (t) => {
  await t.step("default false", () => {
    const { datadog } = parseConfig({ env: {} });
    assert.equal(datadog.bundleUnspecifiedEvents, false);
    assert.equal(datadog.filteringEnabled, false);
    assert.equal(datadog.sourceDetection, false);
  });

  await t.step("from the environment", () => {
    const { datadog } = parseConfig({
      env: {
        DD_BUNDLE_UNSPECIFIED_EVENTS: "true",
        DD_FILTERING_ENABLED: "yes",
        DD_KUBERNETES_EVENTS_SOURCE_DETECTION_ENABLED: "1",
      },
    });
    assert.equal(datadog.bundleUnspecifiedEvents, true);
    assert.equal(datadog.filteringEnabled, true);
    assert.equal(datadog.sourceDetection, true);
  });

  await t.step(
    "from datadog.yaml, source detection nested as the Agent writes it, or dotted",
    () => {
      for (
        const text of [
          "kubernetes_events_source_detection:\n  enabled: true\n",
          "kubernetes_events_source_detection.enabled: true\n",
        ]
      ) {
        const { datadog } = withFile(
          `bundle_unspecified_events: on\nfiltering_enabled: t\n${text}`,
        );
        assert.equal(datadog.bundleUnspecifiedEvents, true);
        assert.equal(datadog.filteringEnabled, true);
        assert.equal(datadog.sourceDetection, true);
      }
    },
  );

  await t.step("a value that is not a boolean is refused", () => {
    const e = configError(() =>
      parseConfig({ env: { DD_KUBERNETES_EVENTS_SOURCE_DETECTION_ENABLED: "maybe" } })
    );
    assert.equal(
      e.message,
      'Cannot parse kubernetes_events_source_detection.enabled "maybe" ' +
        "(env DD_KUBERNETES_EVENTS_SOURCE_DETECTION_ENABLED): must be a boolean (true/false, " +
        "yes/no, on/off, 1/0, t/f or y/n, in any case)",
    );
  });
});

Deno.test("with the datadog sink, a warning where the event settings do not do what their names suggest", async (t) => {
  await t.step(
    "unbundled with an empty collected_event_types: everything, where the Agent sends nothing",
    () => {
      assert.deepEqual(parseConfig({ env: { ...DD, DD_UNBUNDLE_EVENTS: "true" } }).warnings, [
        "unbundle_events is on (env DD_UNBUNDLE_EVENTS) and collected_event_types is empty: " +
        "kevents sends every event unbundled, where the Agent would send none (the Datadog Helm " +
        "chart and Operator fill in Pod, Node and CronJob reasons by default); name the events " +
        "in collected_event_types to send only those",
      ]);
    },
  );

  await t.step("... with bundle_unspecified_events: everything bundled", () => {
    const env = { ...DD, DD_UNBUNDLE_EVENTS: "true", DD_BUNDLE_UNSPECIFIED_EVENTS: "true" };
    assert.deepEqual(parseConfig({ env }).warnings, [
      "unbundle_events (env DD_UNBUNDLE_EVENTS) with bundle_unspecified_events and an empty " +
      "collected_event_types sends no event on its own: every event is bundled, as in the " +
      "Agent; name the events to send alone in collected_event_types",
    ]);
  });

  await t.step("bundled, collected_event_types and bundle_unspecified_events are not used", () => {
    const config = withFile(
      `collected_event_types: '[{"kind":"Pod"}]'\nbundle_unspecified_events: true\n`,
      DD,
    );
    assert.deepEqual(config.warnings, [
      `collected_event_types (${PATH} line 1) is not used: bundled (unbundle_events is false), ` +
      "every event is sent unless filtering_enabled is on, as in the Agent",
      `bundle_unspecified_events (${PATH} line 2) has no effect without unbundle_events: ` +
      "every event is bundled already",
    ]);
  });

  await t.step("none when the settings do what they say, or without the datadog sink", () => {
    const unbundled = { ...DD, DD_UNBUNDLE_EVENTS: "true" };
    const cases: Record<string, string>[] = [
      { ...unbundled, DD_COLLECTED_EVENT_TYPES: '[{"kind":"Pod"}]' },
      { ...unbundled, DD_FILTERING_ENABLED: "true" },
      { ...DD, DD_FILTERING_ENABLED: "true", DD_COLLECTED_EVENT_TYPES: '[{"kind":"Pod"}]' },
      { DD_UNBUNDLE_EVENTS: "true", DD_BUNDLE_UNSPECIFIED_EVENTS: "true" },
      DD,
    ];
    for (const env of cases) {
      assert.deepEqual(parseConfig({ env }).warnings, [], JSON.stringify(env));
    }
  });
});
