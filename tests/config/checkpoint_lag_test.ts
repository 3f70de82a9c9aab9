/**
 * Specification of the checkpoint-lag settings (lib/config/checkpoint_lag.ts):
 * `kevents_checkpoint_lag_share` has a floor of 0.01 of the event TTL, so
 * that the limit cannot shrink to nothing (a share of 1e-7 made a limit of
 * 0 ms, warned about every lag and checked it every millisecond). A value
 * under it is a ConfigError naming the key, where it came from, the value
 * and the rule; `kevents run` exits 2 with it before any request.
 */

import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../lib/config/mod.ts";
import { startFakeApiServer } from "../../lib/fake_apiserver/mod.ts";
import { KeventsProcess, withTempDir } from "../_process.ts";

const KEY = "kevents_checkpoint_lag_share";
const ENV = "KEVENTS_CHECKPOINT_LAG_SHARE";
const RULE = "must be a decimal fraction from 0.01 to 1, 1 excluded (such as 0.5)";
const PATH = "/etc/datadog-agent/datadog.yaml";

/** The ConfigError parseConfig throws for the environment `env` and the file `text`. */
function refusal(env: Record<string, string>, text?: string): ConfigError {
  try {
    parseConfig({ env, ...(text === undefined ? {} : { file: { path: PATH, text } }) });
  } catch (e) {
    assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
    return e;
  }
  assert.fail("the setting was accepted");
}

Deno.test("a checkpoint lag share under 0.01 of the event TTL is refused, naming key, source, value and rule", async (t) => {
  for (const value of ["0.0000001", "0.009", ".005"]) {
    await t.step(`${value} from the environment`, () => {
      const e = refusal({ [ENV]: value });
      assert.deepEqual(
        { key: e.key, source: e.source, value: e.value, rule: e.rule },
        { key: KEY, source: `env ${ENV}`, value, rule: RULE },
      );
      assert.equal(e.message, `Cannot parse ${KEY} "${value}" (env ${ENV}): ${RULE}`);
    });
  }

  await t.step("from the file, with its line", () => {
    const e = refusal({}, `collect_kubernetes_events: true\n${KEY}: 0.0000001\n`);
    assert.deepEqual(
      { key: e.key, source: e.source, value: e.value, rule: e.rule },
      { key: KEY, source: `${PATH} line 2`, value: "0.0000001", rule: RULE },
    );
  });

  await t.step("0.01 itself is taken: 36 s of the default 1 h TTL", () => {
    const config = parseConfig({ env: { [ENV]: "0.01" } });
    assert.deepEqual(config.checkpointLag, { eventTtlMs: 3_600_000, share: 0.01, limitMs: 36_000 });
  });
});

Deno.test("kevents run with a checkpoint lag share of 0.0000001 exits 2 with one line and starts nothing", async () => {
  await using server = await startFakeApiServer();
  await withTempDir("kevents-lag-share-", async (dir) => {
    await Deno.writeTextFile(`${dir}/kubeconfig`, server.kubeconfig());
    // Killed when the test ends: a kevents that took the setting would run on.
    await using run = new KeventsProcess(["run", "--kubeconfig", `${dir}/kubeconfig`], {
      cwd: dir,
      env: { KUBERNETES: "1", [ENV]: "0.0000001", KEVENTS_HEALTH_PORT: "0" },
    });
    await run.until("kevents to exit", () => run.exited);
    assert.equal(await run.stop(), 2, run.stderr);
    assert.equal(run.stdout, "");
    const lines = run.stderr.split("\n").filter((l) => l.trim() !== "");
    assert.equal(lines.length, 1, run.stderr);
    assert.deepEqual(
      run.logs().map((l) => [l.level, l.message]),
      [["FATAL", `Cannot parse ${KEY} "0.0000001" (env ${ENV}): ${RULE}`]],
    );
    assert.equal(server.requestLog.count(), 0, "no request reached the API server");
  });
});
