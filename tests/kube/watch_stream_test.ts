import assert from "node:assert/strict";
import { GoneError, KubeApiError, WatchDecodeError } from "../../lib/kube/errors.ts";
import { parseWatchLine, readWatchBatches, type WatchEvent } from "../../lib/kube/watch_stream.ts";

const encoder = new TextEncoder();

/** A body that delivers exactly these byte chunks, one per read. */
function bodyOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = chunks[i++];
      if (chunk === undefined) controller.close();
      else controller.enqueue(chunk);
    },
  });
}

/** A body that delivers these strings, UTF-8 encoded, one chunk each. */
function textBody(...chunks: string[]): ReadableStream<Uint8Array> {
  return bodyOf(chunks.map((c) => encoder.encode(c)));
}

/** Splits bytes at the given offsets. */
function splitAt(bytes: Uint8Array, offsets: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  for (const end of [...offsets, bytes.length]) {
    out.push(bytes.slice(start, end));
    start = end;
  }
  return out;
}

function line(type: string, name: string, rv: string, extra: Record<string, unknown> = {}): string {
  return `${
    JSON.stringify({
      type,
      object: {
        kind: "Event",
        metadata: { name, namespace: "default", resourceVersion: rv },
        ...extra,
      },
    })
  }\n`;
}

type Outcome = { events: WatchEvent[]; batches: number; error: unknown };

/** Drains a body, keeping every event yielded and the error thrown at the end, if any. */
async function drain(body: ReadableStream<Uint8Array>): Promise<Outcome> {
  const events: WatchEvent[] = [];
  let batches = 0;
  try {
    for await (const batch of readWatchBatches(body)) {
      assert.ok(batch.length > 0, "a batch is never empty");
      batches++;
      events.push(...batch);
    }
  } catch (error) {
    return { events, batches, error };
  }
  return { events, batches, error: undefined };
}

function names(events: WatchEvent[]): string[] {
  return events.map((e) => (e.object as { metadata: { name?: string } }).metadata.name ?? "");
}

Deno.test("readWatchBatches decodes newline-delimited watch events", async (t) => {
  await t.step("each network chunk becomes one batch, in order", async () => {
    const out = await drain(
      textBody(line("ADDED", "a", "1") + line("MODIFIED", "a", "2"), line("DELETED", "a", "3")),
    );
    assert.equal(out.error, undefined);
    assert.equal(out.batches, 2);
    assert.deepEqual(out.events.map((e) => e.type), ["ADDED", "MODIFIED", "DELETED"]);
    assert.deepEqual(out.events.map((e) => e.object.metadata.resourceVersion), ["1", "2", "3"]);
  });

  await t.step(
    "events split across chunks at every byte boundary, even inside a UTF-8 character, decode intact",
    async () => {
      const message = "\u00dcn\u00efc\u00f8d\u00e9 \u4e8b\u4ef6 \u{1f680} end";
      const text = line("ADDED", "first", "10", { message }) + line("BOOKMARK", "", "11");
      const bytes = encoder.encode(text);
      // The 4-byte rocket and the 3-byte CJK characters give boundaries inside a character.
      const rocket = bytes.indexOf(0xf0);
      assert.ok(rocket > 0);
      for (const offsets of [[rocket + 1], [rocket + 2, rocket + 3], [1, rocket + 3]]) {
        const out = await drain(bodyOf(splitAt(bytes, offsets)));
        assert.equal(out.error, undefined);
        assert.equal((out.events[0]!.object as { message?: string }).message, message);
        assert.deepEqual(out.events.map((e) => e.type), ["ADDED", "BOOKMARK"]);
      }
      for (let cut = 1; cut < bytes.length; cut++) {
        const out = await drain(bodyOf(splitAt(bytes, [cut])));
        assert.equal(out.error, undefined, `cut at byte ${cut}`);
        assert.equal((out.events[0]!.object as { message?: string }).message, message);
        assert.equal(out.events.length, 2);
      }
      // One byte per chunk: the worst case.
      const out = await drain(bodyOf([...bytes].map((b) => Uint8Array.of(b))));
      assert.equal(out.error, undefined);
      assert.equal((out.events[0]!.object as { message?: string }).message, message);
      assert.deepEqual(names(out.events), ["first", ""]);
    },
  );

  await t.step("an event line of 1 MiB, arriving in 16 KiB chunks, is one event", async () => {
    const big = "x".repeat(1024 * 1024);
    const bytes = encoder.encode(
      line("ADDED", "big", "7", { message: big }) + line("ADDED", "b", "8"),
    );
    const offsets: number[] = [];
    for (let o = 16 * 1024; o < bytes.length; o += 16 * 1024) offsets.push(o);
    const out = await drain(bodyOf(splitAt(bytes, offsets)));
    assert.equal(out.error, undefined);
    assert.deepEqual(names(out.events), ["big", "b"]);
    assert.equal((out.events[0]!.object as { message?: string }).message, big);
  });

  await t.step("blank lines (and whitespace-only lines) are skipped", async () => {
    const out = await drain(
      textBody("\n", line("ADDED", "a", "1"), "\n  \n\r\n", line("ADDED", "b", "2"), "\n"),
    );
    assert.equal(out.error, undefined);
    assert.deepEqual(names(out.events), ["a", "b"]);
  });

  await t.step("an empty body ends without events", async () => {
    const out = await drain(textBody());
    assert.equal(out.error, undefined);
    assert.equal(out.events.length, 0);
  });
});

Deno.test("readWatchBatches is strict: anything but a valid event is an error", async (t) => {
  await t.step(
    "a non-JSON line throws WatchDecodeError after the events before it were yielded",
    async () => {
      const out = await drain(
        textBody(line("ADDED", "a", "1"), line("ADDED", "b", "2") + "<html>oops</html>\n"),
      );
      assert.deepEqual(names(out.events), ["a", "b"]);
      assert.ok(out.error instanceof WatchDecodeError, `got ${out.error}`);
      assert.match(out.error.message, /not JSON: <html>oops<\/html>/);
    },
  );

  await t.step("the events after a bad line are never yielded", async () => {
    const out = await drain(textBody(line("ADDED", "a", "1") + "{\n" + line("ADDED", "b", "2")));
    assert.deepEqual(names(out.events), ["a"]);
    assert.ok(out.error instanceof WatchDecodeError);
  });

  await t.step("an unknown event type throws WatchDecodeError naming it", async () => {
    const out = await drain(textBody(line("ADDED", "a", "1"), line("RENAMED", "a", "2")));
    assert.deepEqual(names(out.events), ["a"]);
    assert.ok(out.error instanceof WatchDecodeError);
    assert.match(out.error.message, /unknown event type "RENAMED"/);
  });

  await t.step(
    "an event without an object, metadata or resourceVersion throws WatchDecodeError saying which",
    async () => {
      const cases: [unknown, string][] = [
        [
          { type: "ADDED", object: { metadata: { name: "a" } } },
          "whose object has no metadata.resourceVersion",
        ],
        [
          { type: "MODIFIED", object: { metadata: { name: "a", resourceVersion: "" } } },
          "whose object has no metadata.resourceVersion",
        ],
        [
          { type: "DELETED", object: { metadata: { name: "a", resourceVersion: 12 } } },
          "whose object has no metadata.resourceVersion",
        ],
        [{ type: "BOOKMARK", object: {} }, "whose object has no metadata"],
        [
          { type: "ADDED", object: { kind: "Event", metadata: null } },
          "whose object has no metadata",
        ],
        [{ type: "ADDED", object: null }, "without an object"],
        [{ type: "ADDED" }, "without an object"],
      ];
      for (const [bad, what] of cases) {
        const text = JSON.stringify(bad);
        const out = await drain(textBody(`${text}\n`));
        assert.equal(out.events.length, 0);
        assert.ok(out.error instanceof WatchDecodeError, text);
        const type = (bad as { type: string }).type;
        const a = type === "ADDED" ? "an" : "a";
        assert.equal(
          out.error.message,
          `Line 1 of the watch is ${a} ${type} event ${what}: ${text}`,
        );
      }
    },
  );

  await t.step("errors name the line, counting blank lines, and quote it", async () => {
    const out = await drain(
      textBody(line("ADDED", "a", "1"), "\n" + line("ADDED", "b", "2"), "not json\n"),
    );
    assert.deepEqual(names(out.events), ["a", "b"]);
    assert.ok(out.error instanceof WatchDecodeError);
    assert.equal(out.error.message, "Line 4 of the watch is not JSON: not json");
    const weird = `{"type":"WEIRD","object":{"metadata":{"resourceVersion":"3"}}}`;
    const unknown = await drain(
      textBody(line("ADDED", "a", "1") + line("ADDED", "b", "2") + `${weird}\n`),
    );
    assert.ok(unknown.error instanceof WatchDecodeError);
    assert.equal(
      unknown.error.message,
      `Line 3 of the watch has an unknown event type "WEIRD": ${weird}`,
    );
    const long = await drain(textBody(`${"x".repeat(500)}\n`));
    assert.ok(long.error instanceof WatchDecodeError);
    assert.equal(long.error.message, `Line 1 of the watch is not JSON: ${"x".repeat(120)}...`);
  });

  await t.step("a JSON value that is not an event object throws WatchDecodeError", async () => {
    for (const bad of ["null", "42", '"ADDED"', "[]", '{"object":{}}']) {
      const out = await drain(textBody(`${bad}\n`));
      assert.ok(out.error instanceof WatchDecodeError, bad);
    }
  });

  await t.step("an ERROR event with a 410 Status throws GoneError with its reason", async () => {
    const status = {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "too old resource version: 5 (90)",
      reason: "Expired",
      code: 410,
    };
    const out = await drain(
      textBody(line("ADDED", "a", "6"), `${JSON.stringify({ type: "ERROR", object: status })}\n`),
    );
    assert.deepEqual(names(out.events), ["a"]);
    assert.ok(out.error instanceof GoneError, `got ${out.error}`);
    assert.equal(out.error.code, 410);
    assert.equal(out.error.reason, "Expired");
    assert.match(out.error.message, /too old resource version: 5 \(90\)/);
  });

  await t.step("an ERROR event with another Status throws the matching typed error", async () => {
    const status = { kind: "Status", status: "Failure", reason: "InternalError", code: 500 };
    const out = await drain(textBody(`${JSON.stringify({ type: "ERROR", object: status })}\n`));
    assert.ok(out.error instanceof KubeApiError);
    assert.equal(out.error.code, 500);
    assert.equal(out.error.constructor.name, "ServerError");
  });

  await t.step(
    "a body ending in the middle of a line throws WatchDecodeError after the complete events",
    async () => {
      const out = await drain(textBody(line("ADDED", "a", "1"), '{"type":"ADDED","obj'));
      assert.deepEqual(names(out.events), ["a"]);
      assert.ok(out.error instanceof WatchDecodeError);
      assert.equal(
        out.error.message,
        'The watch ended in the middle of an event, on line 2: {"type":"ADDED","obj',
      );
    },
  );

  await t.step("a complete last line without its newline still counts as cut off", async () => {
    const out = await drain(textBody(line("ADDED", "a", "1").trimEnd()));
    assert.equal(out.events.length, 0);
    assert.ok(out.error instanceof WatchDecodeError);
    assert.match(out.error.message, /in the middle of an event/);
  });

  await t.step(
    "a body that errors propagates the stream's error, the position telling where",
    async (t) => {
      const broken = new Error("connection reset");
      const bodyBreakingAfter = (...chunks: string[]) => {
        let i = 0;
        return new ReadableStream<Uint8Array>({
          pull(controller) {
            const chunk = chunks[i++];
            if (chunk === undefined) controller.error(broken);
            else controller.enqueue(encoder.encode(chunk));
          },
        });
      };
      await t.step("between lines", async () => {
        const position = { lines: 0, partial: 0 };
        const events: WatchEvent[] = [];
        const error = await (async () => {
          for await (
            const b of readWatchBatches(bodyBreakingAfter(line("ADDED", "a", "1")), position)
          ) {
            events.push(...b);
          }
        })().catch((e) => e);
        assert.deepEqual(names(events), ["a"]);
        assert.equal(error, broken);
        assert.deepEqual(position, { lines: 1, partial: 0 });
      });
      await t.step("in the middle of a line", async () => {
        const position = { lines: 0, partial: 0 };
        const events: WatchEvent[] = [];
        const error = await (async () => {
          for await (
            const b of readWatchBatches(
              bodyBreakingAfter(
                line("ADDED", "a", "1") + line("ADDED", "b", "2"),
                '{"type":"ADD',
                "ED",
              ),
              position,
            )
          ) events.push(...b);
        })().catch((e) => e);
        assert.deepEqual(names(events), ["a", "b"]);
        assert.equal(error, broken);
        assert.deepEqual(position, { lines: 2, partial: 14 });
      });
    },
  );
});

Deno.test("readWatchBatches cancels the body when the consumer stops early", async () => {
  let cancelled: unknown = "not cancelled";
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.enqueue(encoder.encode(line("ADDED", "a", "1")));
    },
    cancel(reason) {
      cancelled = reason;
    },
  });
  let seen = 0;
  for await (const batch of readWatchBatches(body)) {
    seen += batch.length;
    if (seen >= 3) break;
  }
  assert.equal(seen, 3);
  assert.notEqual(cancelled, "not cancelled");
});

Deno.test("parseWatchLine returns the event as sent", () => {
  const event = parseWatchLine<{ data: number }>(
    '{"type":"MODIFIED","object":{"metadata":{"resourceVersion":"42"},"data":1}}',
  );
  assert.equal(event.type, "MODIFIED");
  assert.equal(event.object.metadata.resourceVersion, "42");
  assert.equal(event.object.data, 1);
});

Deno.test("readWatchBatches reads the asked fields without decoding the object", async (t) => {
  const fields = ["metadata.uid", "type", "series.lastObservedTime", "count"];
  const read = async (...chunks: string[]) => {
    const events: WatchEvent[] = [];
    for await (const b of readWatchBatches(textBody(...chunks), undefined, { fields })) {
      events.push(...b);
    }
    return events;
  };

  await t.step("string fields are given in order; an absent or null one is undefined", async () => {
    const text = line("ADDED", "a", "7", {
      metadata: { name: "a", uid: "u-1", resourceVersion: "7" },
      type: "Warning",
      series: null,
    });
    const [event] = await read(text);
    assert.equal(event!.resourceVersion, "7");
    assert.deepEqual(event!.fields, ["u-1", "Warning", undefined, undefined]);
  });

  await t.step("the object's JSON text is exactly what the server sent", async () => {
    const object = '{"kind":"Event","metadata":{"resourceVersion":"8","uid":"u"},' +
      '"message":"say \\"hi\\" \\u003cb\\u003e","count":3}';
    const [event] = await read(`{"type":"MODIFIED","object":${object}}\n`);
    assert.equal(event!.json, object, "not re-serialised: the escapes are the server's");
    assert.deepEqual(event!.object, JSON.parse(object), "decoded on demand");
  });

  await t.step("a field of another kind leaves `fields` undefined: read `object`", async () => {
    const [event] = await read(line("ADDED", "a", "9", { type: 5 }));
    assert.equal(event!.fields, undefined);
    assert.equal((event!.object as { type?: unknown }).type, 5);
  });

  await t.step("a line the fast path does not take decodes to the same event", async () => {
    // Tabs as whitespace and an escaped member name: valid JSON, left to JSON.parse.
    const text =
      '{"type":\t"ADDED","object":{"metadata":{"resourceVersion":"10","\\u0075id":"u-2"},' +
      '"type":"Normal"}}';
    const [event] = await read(`${text}\n`);
    assert.equal(event!.type, "ADDED");
    assert.equal(event!.resourceVersion, "10");
    assert.deepEqual(event!.fields, ["u-2", "Normal", undefined, undefined]);
    assert.deepEqual(JSON.parse(event!.json), JSON.parse(text).object);
  });

  await t.step("malformed lines fail as they did, naming the line", async () => {
    for (
      const [bad, message] of <[string, string][]> [
        ['{"type":"ADDED","object":{"metadata":{"resourceVersion":"1"}},}', "is not JSON"],
        ['{"type":"ADDED","object":{"metadata":{"resourceVersion":"1","x":"a\tb"}}}', "not JSON"],
        ['{"type":"ADDED","object":{"metadata":{"resourceVersion":1}}}', "no metadata.resource"],
        ['{"type":"RENAMED","object":{"metadata":{"resourceVersion":"1"}}}', "unknown event type"],
      ]
    ) {
      const error = await read(line("ADDED", "a", "1"), `${bad}\n`).catch((e) => e);
      assert.ok(error instanceof WatchDecodeError, bad);
      assert.match(error.message, /^Line 2 of the watch /);
      assert.ok(error.message.includes(message), error.message);
    }
  });
});

Deno.test("readWatchBatches tells of each chunk and stops at once when its signal aborts", async (t) => {
  await t.step("onChunk is called once per chunk of the body", async () => {
    let chunks = 0;
    const body = textBody(
      line("ADDED", "a", "1"),
      '{"type":"ADD',
      'ED","object":{"metadata":' +
        '{"resourceVersion":"2"}}}\n',
    );
    for await (const _ of readWatchBatches(body, undefined, { onChunk: () => chunks++ })) {
      // Nothing to do: counting chunks.
    }
    assert.equal(chunks, 3);
  });

  await t.step(
    "a read waiting on a body that never ends by itself ends with the reason",
    async () => {
      const controller = new AbortController();
      const reason = new Error("term over");
      let pulls = 0;
      // Like Deno's fetch body of an idle watch after an abort: a read just waits.
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          if (++pulls === 1) return c.enqueue(encoder.encode(line("ADDED", "a", "1")));
          // A read is waiting now: the abort comes while it waits.
          controller.abort(reason);
          return new Promise(() => {});
        },
      }, { highWaterMark: 0 }); // Pulled only for a read: the second pull has one waiting.
      const events: WatchEvent[] = [];
      let guard: ReturnType<typeof setTimeout> | undefined;
      const error = await Promise.race([
        (async () => {
          for await (const b of readWatchBatches(body, undefined, { signal: controller.signal })) {
            events.push(...b);
          }
        })().catch((e) => e),
        new Promise((resolve) => guard = setTimeout(() => resolve("still waiting"), 10_000)),
      ]);
      clearTimeout(guard);
      assert.equal(error, reason);
      assert.deepEqual(names(events), ["a"]);
    },
  );

  await t.step("an already aborted signal throws its reason before reading", async () => {
    const reason = new Error("before");
    const error = await (async () => {
      for await (
        const _ of readWatchBatches(textBody(line("ADDED", "a", "1")), undefined, {
          signal: AbortSignal.abort(reason),
        })
      ) assert.fail("no batch after the abort");
    })().catch((e) => e);
    assert.equal(error, reason);
  });
});
