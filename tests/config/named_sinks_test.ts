/**
 * Specification of `kevents_sinks` as a list of named sinks: each a mapping
 * with its name, type, options (the type's flat settings without their
 * prefix) and routing rules, beside the implicit sinks the flat settings
 * configure; several sinks of one type; every mistake refused naming the
 * sink, the option, the line, the value and the rule.
 */

import assert from "node:assert/strict";
import { type Config, ConfigError, parseConfig } from "../../lib/config/mod.ts";
import { createSinks } from "../../lib/sinks/mod.ts";

const PATH = "/etc/datadog-agent/datadog.yaml";

function fromFile(text: string, env: Record<string, string> = {}): Config {
  return parseConfig({ env, file: { path: PATH, text } });
}

function refused(run: () => unknown): ConfigError {
  try {
    run();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  assert.fail("accepted");
}

/** The configuration of the sink named `name`. */
function sink(config: Config, name: string) {
  const found = config.outputs.find((o) => o.name === name);
  assert.ok(found, `no sink ${name} in ${config.outputs.map((o) => o.name)}`);
  return found;
}

const TWO_WEBHOOKS = `
kevents_sinks:
  - stdout
  - name: warnings
    type: webhook
    url: https://hooks.example.com/k8s
    format: json
    max_attempts: 3
    on_failure: drop
    headers:
      X-Team: sre
    include_types: [Warning]
    exclude_namespaces: [kube-system]
  - name: audit
    type: webhook
    url: https://audit.example.com/in
    match: involvedObject.kind=Node
  - name: archive
    type: otlp
    endpoint: http://otel-collector:4318
    protocol: http/json
`;

Deno.test("kevents_sinks lists named sinks, each with its type, options and rules", async (t) => {
  const config = fromFile(TWO_WEBHOOKS);

  await t.step("every sink, in the order written; the implicit one named after its type", () => {
    assert.deepEqual(
      config.outputs.map((o) => [o.name, o.type]),
      [["stdout", "stdout"], ["warnings", "webhook"], ["audit", "webhook"], [
        "archive",
        "otlp",
      ]],
    );
    assert.deepEqual(config.sinks, ["stdout"], "the implicit sinks alone");
  });

  await t.step("a named sink's options mean what its type's flat settings mean", () => {
    const flat = parseConfig({
      env: {
        KEVENTS_SINKS: "webhook,otlp",
        KEVENTS_WEBHOOK_URL: "https://hooks.example.com/k8s",
        KEVENTS_WEBHOOK_FORMAT: "json",
        KEVENTS_WEBHOOK_MAX_ATTEMPTS: "3",
        KEVENTS_WEBHOOK_ON_FAILURE: "drop",
        KEVENTS_WEBHOOK_HEADERS: "X-Team=sre",
        KEVENTS_OTLP_ENDPOINT: "http://otel-collector:4318",
        KEVENTS_OTLP_PROTOCOL: "http/json",
      },
    });
    const warnings = sink(config, "warnings");
    assert.equal(warnings.type, "webhook");
    if (warnings.type !== "webhook") return;
    const { fileSources: _, ...named } = warnings.webhook;
    assert.deepEqual(named, flat.webhook);
    const archive = sink(config, "archive");
    assert.equal(archive.type, "otlp");
    if (archive.type === "otlp") assert.deepEqual(archive.otlp, flat.otlp);
  });

  await t.step("each sink's rules become its route", () => {
    assert.deepEqual(config.routes.warnings?.include.types, ["Warning"]);
    assert.deepEqual(config.routes.warnings?.exclude.namespaces, ["kube-system"]);
    assert.equal(config.routes.audit?.match, "involvedObject.kind=Node");
    assert.equal(config.routes.archive, undefined, "no rules: every event");
    assert.equal(config.routes.stdout, undefined);
  });

  await t.step("kevents_routes may route a named sink that has no rules of its own", () => {
    const c = fromFile(`${TWO_WEBHOOKS}kevents_routes:\n  archive:\n    include_types: [Normal]\n`);
    assert.deepEqual(c.routes.archive?.include.types, ["Normal"]);
  });
});

Deno.test("a named sink starts from its type's defaults, not from the flat settings", () => {
  const config = fromFile(
    `
kevents_sinks:
  - webhook
  - name: second
    type: webhook
    url: https://second.example.com/
kevents_webhook_url: https://first.example.com/
kevents_webhook_bearer_token: first-token
kevents_webhook_max_attempts: 9
`,
  );
  const first = sink(config, "webhook");
  const second = sink(config, "second");
  assert.ok(first.type === "webhook" && second.type === "webhook");
  assert.equal(first.webhook.bearerToken, "first-token");
  assert.equal(first.webhook.maxAttempts, 9);
  assert.equal(second.webhook.url, "https://second.example.com/");
  assert.equal(second.webhook.bearerToken, undefined, "the flat token is the implicit sink's");
  assert.equal(second.webhook.maxAttempts, parseConfig({ env: {} }).webhook.maxAttempts);
});

Deno.test("named sinks from the environment: KEVENTS_SINKS as JSON", () => {
  const config = parseConfig({
    env: {
      KEVENTS_SINKS: JSON.stringify([
        "stdout",
        { name: "dd-eu", type: "datadog", api_key: "k1", site: "datadoghq.eu" },
        { name: "dd-us", type: "datadog", api_key: "k2", unbundle_events: true, tags: ["a:b"] },
      ]),
    },
  });
  const eu = sink(config, "dd-eu");
  const us = sink(config, "dd-us");
  assert.ok(eu.type === "datadog" && us.type === "datadog");
  assert.equal(eu.datadog.apiKey, "k1");
  assert.equal(eu.datadog.site, "datadoghq.eu");
  assert.equal(us.datadog.unbundleEvents, true);
  assert.deepEqual(us.datadog.tags, ["a:b"]);
  assert.equal(config.enrich.enabled, true, "a Datadog sink turns enrichment on, named or not");
  assert.ok(config.batchWindowMs > 0, "dd-eu bundles: the batch window applies");
});

Deno.test("a bad named sink is refused naming the sink, the option, the line, the value and the rule", async (t) => {
  const file = (...lines: string[]) => `kevents_sinks:\n${lines.join("\n")}\n`;

  await t.step("a value its flat setting would refuse", () => {
    const e = refused(() =>
      fromFile(
        file("  - name: hook", "    type: webhook", "    url: https://h/", "    max_attempts: 0"),
      )
    );
    assert.equal(e.key, "kevents_sinks hook.max_attempts");
    assert.equal(e.source, `${PATH} line 5`);
    assert.equal(e.value, "0");
    assert.equal(
      e.rule,
      refused(() => parseConfig({ env: { KEVENTS_WEBHOOK_MAX_ATTEMPTS: "0" } })).rule,
      "the flat setting's rule",
    );
  });

  await t.step("an option the type does not take, with the ones it takes", () => {
    const e = refused(() =>
      fromFile(file("  - name: hook", "    type: webhook", "    uri: https://h/"))
    );
    assert.equal(e.key, "kevents_sinks hook.uri");
    assert.equal(e.source, `${PATH} line 4`);
    assert.match(e.message, /option uri of sink "hook".*takes url, format, headers/);
  });

  await t.step("stdout and null take rules but no options", () => {
    const e = refused(() =>
      fromFile(file("  - name: out", "    type: stdout", "    format: json"))
    );
    assert.match(e.rule, /the stdout sink takes no options/);
  });

  await t.step("a required option missing", () => {
    const e = refused(() => fromFile(file("  - name: hook", "    type: webhook")));
    assert.equal(e.key, "kevents_sinks hook.url");
    assert.equal(e.source, `${PATH} line 2`);
    assert.equal(
      e.message,
      `Cannot use sink "hook" (${PATH} line 2): url is required with the webhook sink`,
    );
    assert.match(
      refused(() => fromFile(file("  - name: o", "    type: otlp"))).message,
      /endpoint is required with the otlp sink \(or logs_endpoint\)/,
    );
    assert.match(
      refused(() => fromFile(file("  - name: d", "    type: datadog"))).message,
      /api_key is required with the datadog sink/,
    );
  });

  await t.step("a client certificate without its key", () => {
    const e = refused(() =>
      fromFile(
        file("  - name: o", "    type: otlp", "    endpoint: https://o/", "    cert_file: /c"),
      )
    );
    assert.equal(e.key, "kevents_sinks o.cert_file");
    assert.equal(e.source, `${PATH} line 5`);
    assert.match(e.rule, /needs key_file/);
  });

  await t.step("a secrets-backend handle where a credential goes", () => {
    const e = refused(() =>
      fromFile(
        file(
          "  - name: hook",
          "    type: webhook",
          "    url: https://h/",
          "    bearer_token: ENC[t]",
        ),
      )
    );
    assert.equal(e.key, "kevents_sinks hook.bearer_token");
    assert.equal(e.value, "ENC[t]");
    assert.match(e.rule, /secrets backend/);
  });

  await t.step("a name used twice, a bad name, an unknown type", () => {
    for (
      const text of [
        file("  - webhook", "  - name: webhook", "    type: webhook", "    url: https://h/"),
        file("  - name: Hook", "    type: webhook", "    url: https://h/"),
        file("  - name: kafka", "    type: kafka"),
        file("  - name: nameless-type"),
      ]
    ) {
      const e = refused(() => fromFile(text, { KEVENTS_WEBHOOK_URL: "https://flat/" }));
      assert.equal(e.key, "kevents_sinks");
      assert.equal(e.source, `${PATH} line 1`);
      assert.match(e.rule, /a mapping with a name .* and a type; every name used once/);
    }
  });

  await t.step("bad rules, and rules given twice", () => {
    const bad = refused(() =>
      fromFile(file("  - name: out", "    type: stdout", "    include_types: {Warning: x}"))
    );
    assert.equal(bad.key, "kevents_sinks out");
    const selector = refused(() =>
      fromFile(file("  - name: out", "    type: stdout", "    match: spec.nodeName=n1"))
    );
    assert.equal(selector.key, "kevents_sinks out");
    assert.match(selector.rule, /cannot select events on the field "spec.nodeName"/);
    const twice = refused(() =>
      fromFile(
        file("  - name: out", "    type: stdout", "    include_types: [Warning]") +
          "kevents_routes:\n  out:\n    include_types: [Normal]\n",
      )
    );
    assert.equal(twice.key, "kevents_routes");
    assert.match(twice.rule, /whose rules kevents_sinks gives/);
  });
});

Deno.test("a named sink's credentials stay as written, and out of messages", async (t) => {
  await t.step("values keep the text written: 000123 is not the number 123", () => {
    const config = fromFile(
      "kevents_sinks:\n  - name: hook\n    type: webhook\n    url: https://h/\n" +
        "    bearer_token: 000123456789\n    headers:\n      X-Key: 0x1F\n" +
        "      X-Big: 12345678901234567890123\n    max_attempts: 3\n  - null\n",
    );
    const hook = sink(config, "hook");
    assert.ok(hook.type === "webhook");
    assert.equal(hook.webhook.bearerToken, "000123456789");
    assert.deepEqual(hook.webhook.headers, { "X-Key": "0x1F", "X-Big": "12345678901234567890123" });
    assert.equal(hook.webhook.maxAttempts, 3);
    assert.equal(sink(config, "null").type, "null", "a bare null item is the null sink");
  });

  await t.step("a list refused as a whole shows names and types, never the options", () => {
    const secret = "SUPERSECRET-4f1c";
    const fromEnv = refused(() =>
      parseConfig({
        env: {
          KEVENTS_SINKS: JSON.stringify([{ name: "Audit", type: "webhook", bearer_token: secret }]),
        },
      })
    );
    const inFile = refused(() =>
      fromFile(
        `kevents_sinks:\n  - name: audit\n    type: kafka\n    api_key: ${secret}\n`,
      )
    );
    for (const e of [fromEnv, inFile]) {
      assert.equal(e.key, "kevents_sinks");
      assert.ok(!e.message.includes(secret) && !e.value.includes(secret), e.message);
    }
    assert.match(fromEnv.message, /"name":"Audit","type":"webhook"/);
  });
});

Deno.test("a named sink's TLS file is checked at start and named as its option", () => {
  const config = fromFile(
    "kevents_sinks:\n  - name: archive\n    type: otlp\n    endpoint: https://o/\n" +
      "    ca_file: /no/such/ca.pem\n",
  );
  const e = refused(() =>
    createSinks(config, {
      readTextFile: (path) => {
        throw new Deno.errors.NotFound(`No such file: ${path}`);
      },
    })
  );
  assert.equal(e.key, "kevents_sinks archive.ca_file");
  assert.equal(e.source, `${PATH} line 5`);
});

Deno.test("the file's named sinks are checked even when KEVENTS_SINKS overrides them", () => {
  const e = refused(() =>
    fromFile(
      "kevents_sinks:\n  - name: hook\n    type: webhook\n    url: https://h/\n    bogus: 1\n",
      { KEVENTS_SINKS: "stdout" },
    )
  );
  assert.equal(e.key, "kevents_sinks hook.bogus");
  assert.equal(e.source, `${PATH} line 5`);
});
