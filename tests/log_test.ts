import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { addLogSecrets, logLevelFrom, setupLogging, teardownLogging } from "../lib/log.ts";

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
