import assert from "node:assert/strict";
import type { CoreV1Event } from "@kubernetes/client-node";
import { EVENT_FIELDS, eventTime, WatchedRecord } from "../../lib/pump/event_record.ts";
import { eventJson, type EventRecord, StdoutSink } from "../../lib/sinks/mod.ts";
import { webhookBody } from "../../lib/sinks/webhook.ts";
import type { WatchEvent } from "../../lib/kube/watch_stream.ts";

/** The text of an event as an API server sends it (Go escapes `<`, `>` and `&`). */
const SENT = '{"kind":"Event","apiVersion":"v1","metadata":{"name":"p.1","namespace":"web",' +
  '"uid":"u-1","resourceVersion":"42","creationTimestamp":"2026-12-01T10:00:00Z"},' +
  '"reason":"Unhealthy","message":"probe said \\u003cb\\u003e500\\u003c/b\\u003e",' +
  '"lastTimestamp":"2026-12-01T10:00:05Z","count":3,"type":"Warning","eventTime":null}';

/** A watched event as the watch gives it, counting how often its object is decoded. */
function watched(fields: readonly (string | undefined)[] | undefined) {
  const counter = { decoded: 0 };
  const event: WatchEvent<CoreV1Event> = {
    type: "MODIFIED",
    resourceVersion: "42",
    json: SENT,
    fields,
    get object() {
      counter.decoded++;
      return JSON.parse(SENT);
    },
  };
  return { event, counter };
}

/** What the stdout sink writes for `records`. */
async function stdoutOf(records: EventRecord[]): Promise<string> {
  const chunks: Uint8Array[] = [];
  const sink = new StdoutSink({
    writer: {
      write(p) {
        chunks.push(p.slice());
        return Promise.resolve(p.length);
      },
    },
  });
  await sink.send(records, new AbortController().signal);
  return chunks.map((c) => new TextDecoder().decode(c)).join("");
}

Deno.test("a watched event's record is built from the fields the watch read", async (t) => {
  const fields = [
    "u-1",
    "Warning",
    "2026-12-01T10:00:05Z",
    undefined,
    undefined,
    "2026-12-01T10:00:00Z",
    "Pod",
    "web",
    "p",
    "pod-uid-1",
  ];
  assert.equal(fields.length, EVENT_FIELDS.length);

  await t.step("key, type and time without decoding the event", () => {
    const { event, counter } = watched(fields);
    const record = new WatchedRecord("MODIFIED", event);
    assert.equal(record.key, "u-1/42");
    assert.equal(record.type, "MODIFIED");
    assert.equal(record.eventType, "Warning");
    assert.equal(record.time, "2026-12-01T10:00:05Z", "lastTimestamp first, as eventTime() says");
    assert.deepEqual(record.involved, {
      kind: "Pod",
      namespace: "web",
      name: "p",
      uid: "pod-uid-1",
    });
    assert.equal(counter.decoded, 0);
  });

  await t.step(
    "the stdout and webhook sinks write the event's text as the server sent it",
    async () => {
      const { event, counter } = watched(fields);
      const record = new WatchedRecord("MODIFIED", event);
      const line = `{"key":"u-1/42","type":"MODIFIED","event":${SENT}}\n`;
      assert.equal(await stdoutOf([record]), line);
      assert.equal(webhookBody([record], "ndjson"), line);
      assert.equal(webhookBody([record], "json"), `[${line.trimEnd()}]`);
      assert.equal(counter.decoded, 0, "nothing decoded it");
    },
  );

  await t.step("the event is decoded once, when read, and is the value of its text", () => {
    const { event, counter } = watched(fields);
    const record = new WatchedRecord("MODIFIED", event);
    assert.deepEqual(record.event, JSON.parse(SENT));
    assert.equal(eventTime(record.event), record.time);
    assert.deepEqual(JSON.parse(JSON.stringify(record)), {
      key: "u-1/42",
      type: "MODIFIED",
      event: JSON.parse(SENT),
    });
    assert.ok(counter.decoded >= 1);
  });

  await t.step("without the fields (one was not a string) they come from the event", () => {
    const { event } = watched(undefined);
    const record = new WatchedRecord("ADDED", event);
    assert.equal(record.key, "u-1/42");
    assert.equal(record.eventType, "Warning");
    assert.equal(record.time, "2026-12-01T10:00:05Z");
  });
});

Deno.test("a record without JSON text is written as before: its event serialised", async () => {
  const event = JSON.parse(SENT) as CoreV1Event;
  const record: EventRecord = { key: "u-1/42", type: "ADDED", event };
  assert.equal(eventJson(record), JSON.stringify(event));
  assert.equal(
    await stdoutOf([record]),
    `{"key":"u-1/42","type":"ADDED","event":${JSON.stringify(event)}}\n`,
  );
});
