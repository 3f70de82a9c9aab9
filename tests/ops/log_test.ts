import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { addLogSecrets, logLevelFrom, setupLogging, teardownLogging } from "../../lib/ops/log.ts";

/** Runs `fn` with logging into memory; returns the lines written. */
async function captured(json: boolean, fn: () => void): Promise<string[]> {
  const chunks: Uint8Array[] = [];
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      chunks.push(chunk);
    },
  });
  await setupLogging({ json, writable, level: "debug" });
  try {
    fn();
  } finally {
    await teardownLogging();
  }
  const text = new TextDecoder().decode(
    chunks.reduce((all, c) => new Uint8Array([...all, ...c]), new Uint8Array()),
  );
  return text.split("\n").filter((l) => l !== "");
}

Deno.test("a registered credential never appears in a log line, whatever logs it", async (t) => {
  const secret = "s3cr3t-token-4f9a1c";
  addLogSecrets([secret]);
  for (const json of [true, false]) {
    await t.step(json ? "JSON lines" : "text", async () => {
      const lines = await captured(json, () => {
        const log = getLogger(["kevents", "test"]);
        log.info("Calling with {header}", { header: `Bearer ${secret}` });
        log.warn(`Failed: the answer echoed ${secret}`);
      });
      assert.equal(lines.length, 2);
      for (const line of lines) {
        assert.ok(!line.includes(secret), line);
        assert.ok(line.includes("[redacted]"), line);
      }
      if (json) {
        const first = JSON.parse(lines[0]!);
        assert.equal(first.properties.header, "Bearer [redacted]");
        assert.equal(first.level, "INFO");
      }
    });
  }
});

Deno.test("values shorter than 4 characters are not treated as secrets", async () => {
  addLogSecrets(["abc"]);
  const lines = await captured(true, () => getLogger(["kevents"]).info("abc and abcd"));
  assert.match(lines[0]!, /abc and abcd/);
});

Deno.test("DD_LOG_LEVEL takes the Agent's level names", () => {
  assert.equal(logLevelFrom("WARN"), "warning");
  assert.equal(logLevelFrom("critical"), "fatal");
  assert.equal(logLevelFrom("off"), "fatal");
  assert.equal(logLevelFrom(" debug "), "debug");
  assert.equal(logLevelFrom(""), undefined);
  assert.equal(logLevelFrom(undefined), undefined);
  assert.throws(() => logLevelFrom("verbose"), {
    name: "ConfigError",
    message: 'Cannot parse log_level "verbose" (DD_LOG_LEVEL): must be one of trace, debug, ' +
      "info, warn, warning, error, critical, fatal, off (in any case)",
  });
});

Deno.test("string values render without quotes in the message; properties keep every value", async (t) => {
  const emit = () => {
    const log = getLogger(["kevents", "test"]);
    log.info("Health and metrics on http://{address}:{port} (/healthz)", {
      address: "0.0.0.0",
      port: 5555,
    });
    log.info("No checkpoint: starting from now{backfill}", { backfill: "" });
    log.info("Relisting {resource}: {pages} pages, {detail}", {
      resource: "events",
      pages: 3,
      detail: { expired: true },
    });
  };

  await t.step("JSON lines", async () => {
    const lines = (await captured(true, emit)).map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.message), [
      "Health and metrics on http://0.0.0.0:5555 (/healthz)",
      "No checkpoint: starting from now",
      'Relisting events: 3 pages, {"expired":true}',
    ]);
    assert.deepEqual(lines[0].properties, { address: "0.0.0.0", port: 5555 });
    assert.deepEqual(lines[1].properties, { backfill: "" });
    assert.deepEqual(lines[2].properties, {
      resource: "events",
      pages: 3,
      detail: { expired: true },
    });
  });

  await t.step("text", async () => {
    const lines = await captured(false, emit);
    assert.match(lines[0]!, /Health and metrics on http:\/\/0\.0\.0\.0:5555 \(\/healthz\)$/);
    assert.match(lines[1]!, /No checkpoint: starting from now$/);
    assert.match(lines[2]!, /Relisting events: 3 pages, \{ expired: true \}$/);
  });

  await t.step("a string value cannot start a new line of the text log", async () => {
    const lines = await captured(false, () => {
      getLogger(["kevents"]).warn("Refused {name}", { name: "x\nFATAL forged line" });
    });
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0]!, /Refused x\\nFATAL forged line$/);
  });

  await t.step("a registered secret in a string value is still redacted", async () => {
    const secret = "b4re-string-secret-93c1";
    addLogSecrets([secret]);
    for (const json of [true, false]) {
      const [line] = await captured(json, () => {
        getLogger(["kevents"]).info("Token {token}", { token: secret });
      });
      assert.ok(!line!.includes(secret), line!);
      assert.match(line!, /Token \[redacted\]/);
    }
  });
});
