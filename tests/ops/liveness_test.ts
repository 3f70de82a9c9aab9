import assert from "node:assert/strict";
import { Liveness } from "../../lib/ops/liveness.ts";
import { FakeClock } from "../_fake_clock.ts";

const LIMIT_MS = 600_000;

Deno.test("liveness judges only the leader's watch", async (t) => {
  await t.step("a follower is live however long it has been silent", async () => {
    const clock = new FakeClock();
    const liveness = new Liveness(clock);
    await clock.advance(10 * LIMIT_MS);
    assert.deepEqual(liveness.check(LIMIT_MS), { live: true, detail: "ok: not leading" });
  });

  await t.step("a leader whose watch stays silent past the limit is not live", async () => {
    const clock = new FakeClock();
    const liveness = new Liveness(clock);
    liveness.leading(true);
    await clock.advance(LIMIT_MS);
    assert.equal(liveness.check(LIMIT_MS).live, true, "at the limit, still live");
    await clock.advance(1);
    const verdict = liveness.check(LIMIT_MS);
    assert.equal(verdict.live, false);
    assert.equal(
      verdict.detail,
      "stalled: the leader's watch received nothing for 600001 ms (limit 600000 ms) and " +
        "restarting it did not help",
    );
  });

  await t.step(
    "any sign of life (an event, a bookmark, a reopened watch) resets the silence",
    async () => {
      const clock = new FakeClock();
      const liveness = new Liveness(clock);
      liveness.leading(true);
      await clock.advance(LIMIT_MS - 1);
      liveness.activity();
      await clock.advance(LIMIT_MS - 1);
      assert.equal(liveness.check(LIMIT_MS).live, true);
    },
  );

  await t.step("waiting on slow sinks is backpressure, not a stall", async () => {
    const clock = new FakeClock();
    const liveness = new Liveness(clock);
    liveness.leading(true);
    liveness.waitingOnSinks(true);
    await clock.advance(5 * LIMIT_MS);
    assert.deepEqual(liveness.check(LIMIT_MS), { live: true, detail: "ok: waiting for the sinks" });
    // Reading resumes: the silence counts from then.
    liveness.waitingOnSinks(false);
    await clock.advance(LIMIT_MS + 1);
    assert.equal(liveness.check(LIMIT_MS).live, false);
  });

  await t.step("the end of a term makes the replica live again", async () => {
    const clock = new FakeClock();
    const liveness = new Liveness(clock);
    liveness.leading(true);
    await clock.advance(LIMIT_MS + 1);
    assert.equal(liveness.check(LIMIT_MS).live, false);
    liveness.leading(false);
    assert.equal(liveness.check(LIMIT_MS).live, true);
  });
});
