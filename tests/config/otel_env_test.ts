/**
 * Specification of the OpenTelemetry exporters' variables
 * (`OTEL_EXPORTER_OTLP_*`) for the otlp sink: they fill what kevents' own
 * settings leave unset, the logs signal's form first; a value kevents
 * cannot use stops the start naming the variable; only the otlp sink
 * reads them.
 */

import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../lib/config/mod.ts";

const PATH = "/etc/datadog-agent/datadog.yaml";

function otlp(env: Record<string, string>, file?: string) {
  return parseConfig({
    env: { KEVENTS_SINKS: "otlp", ...env },
    ...(file === undefined ? {} : { file: { path: PATH, text: file } }),
  });
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

Deno.test("the OpenTelemetry variables configure the otlp sink where kevents' settings are silent", async (t) => {
  await t.step("OTEL_EXPORTER_OTLP_ENDPOINT is a base: /v1/logs is appended", () => {
    const c = otlp({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel-collector:4318" });
    assert.equal(c.otlp.url, "http://otel-collector:4318/v1/logs");
  });

  await t.step("the logs signal's variables win over the general ones", () => {
    const c = otlp({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://general:4318",
      OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: "http://logs:4318/custom/logs",
      OTEL_EXPORTER_OTLP_COMPRESSION: "gzip",
      OTEL_EXPORTER_OTLP_LOGS_COMPRESSION: "none",
    });
    assert.equal(c.otlp.url, "http://logs:4318/custom/logs");
    assert.equal(c.otlp.compression, "none");
  });

  await t.step("headers are percent-decoded, as the specification writes them", () => {
    const c = otlp({
      OTEL_EXPORTER_OTLP_ENDPOINT: "https://otel:4318",
      OTEL_EXPORTER_OTLP_HEADERS: "api-key=a%20b%3Dc,X-Tenant=team-1",
    });
    assert.deepEqual(c.otlp.headers, { "api-key": "a b=c", "X-Tenant": "team-1" });
  });

  await t.step("protocol and TLS files", () => {
    const c = otlp({
      OTEL_EXPORTER_OTLP_ENDPOINT: "https://otel:4318",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_CERTIFICATE: "/certs/ca.pem",
      OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: "/certs/tls.crt",
      OTEL_EXPORTER_OTLP_CLIENT_KEY: "/certs/tls.key",
    });
    assert.equal(c.otlp.protocol, "http/json");
    assert.equal(c.otlp.caFile, "/certs/ca.pem");
    assert.equal(c.otlp.certFile, "/certs/tls.crt");
    assert.equal(c.otlp.keyFile, "/certs/tls.key");
    assert.equal(c.otlp.fileSources?.caFile, "env OTEL_EXPORTER_OTLP_CERTIFICATE");
  });

  await t.step("kevents' settings win, in the environment or in the file", () => {
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel:4318",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    };
    const fromEnv = otlp({ ...env, KEVENTS_OTLP_LOGS_ENDPOINT: "http://mine:4318/v1/logs" });
    assert.equal(fromEnv.otlp.url, "http://mine:4318/v1/logs");
    const fromFile = otlp(
      env,
      "kevents_otlp_endpoint: http://file:4318\n" +
        "kevents_otlp_protocol: http/protobuf\n",
    );
    assert.equal(fromFile.otlp.url, "http://file:4318/v1/logs");
    assert.equal(fromFile.otlp.protocol, "http/protobuf");
  });

  await t.step("without the otlp sink they are not read", () => {
    const c = parseConfig({
      env: { OTEL_EXPORTER_OTLP_PROTOCOL: "grpc", OTEL_EXPORTER_OTLP_ENDPOINT: "not a url" },
    });
    assert.equal(c.otlp.url, undefined);
  });

  await t.step("TIMEOUT and INSECURE are not read, and a warning says so", () => {
    const c = otlp({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel:4318",
      OTEL_EXPORTER_OTLP_TIMEOUT: "30000",
    });
    assert.ok(c.warnings.some((w) => /^OTEL_EXPORTER_OTLP_TIMEOUT is not read/.test(w)));
  });
});

Deno.test("an OpenTelemetry variable kevents cannot use stops the start, naming it", async (t) => {
  await t.step("gRPC, which kevents does not speak", () => {
    const e = refused(() =>
      otlp({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel:4317", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })
    );
    assert.equal(e.key, "OTEL_EXPORTER_OTLP_PROTOCOL");
    assert.equal(e.source, "env OTEL_EXPORTER_OTLP_PROTOCOL");
    assert.match(e.rule, /OTLP over HTTP only.*4318.*KEVENTS_OTLP_PROTOCOL/);
  });

  await t.step("a bad endpoint", () => {
    const e = refused(() => otlp({ OTEL_EXPORTER_OTLP_ENDPOINT: "otel:4318" }));
    assert.equal(e.key, "OTEL_EXPORTER_OTLP_ENDPOINT");
    assert.equal(e.source, "env OTEL_EXPORTER_OTLP_ENDPOINT");
  });

  await t.step("headers that cannot be decoded, the value masked", () => {
    const e = refused(() =>
      otlp({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel:4318",
        OTEL_EXPORTER_OTLP_HEADERS: "api-key=secret-%ZZ-value",
      })
    );
    assert.equal(e.key, "OTEL_EXPORTER_OTLP_HEADERS");
    assert.ok(!e.message.includes("secret-"), e.message);
  });

  await t.step("no endpoint anywhere", () => {
    const e = refused(() => otlp({}));
    assert.match(e.message, /nor OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_LOGS_ENDPOINT/);
  });
});
