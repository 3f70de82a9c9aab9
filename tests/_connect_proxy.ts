/**
 * A tiny HTTP CONNECT proxy for tests of a kubeconfig's `proxy-url`: it
 * answers `CONNECT host:port` by opening a TCP connection to the target,
 * replying `200 Connection Established` and piping bytes both ways (TLS
 * passes through untouched). It records every CONNECT target, and refuses
 * any other method with 405.
 *
 * @example
 * ```ts
 * await using proxy = new ConnectProxy();
 * // ... a kubeconfig with `proxy-url: ${proxy.url}` ...
 * proxy.targets; // ["127.0.0.1:43125"]
 * ```
 */

/** The longest request head the proxy reads before giving up on a client. */
const MAX_HEAD_BYTES = 16 * 1024;

/** Where the head of a request ends: the index after `\r\n\r\n`, or -1. */
function headEnd(bytes: Uint8Array): number {
  for (let i = 3; i < bytes.length; i++) {
    if (
      bytes[i - 3] === 13 && bytes[i - 2] === 10 && bytes[i - 1] === 13 && bytes[i] === 10
    ) {
      return i + 1;
    }
  }
  return -1;
}

/** Closes a connection that may be closed already. */
function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch (e) {
    if (!(e instanceof Deno.errors.BadResource)) throw e;
  }
}

/** An HTTP CONNECT proxy on 127.0.0.1 (any free port); close it with `await using`. */
export class ConnectProxy implements AsyncDisposable {
  readonly #listener: Deno.Listener<Deno.TcpConn, Deno.NetAddr>;
  readonly #accepting: Promise<void>;
  readonly #conns = new Set<Deno.Conn>();
  readonly #tunnels = new Set<Promise<void>>();
  /** The `host:port` of every CONNECT, in order. */
  readonly targets: string[] = [];

  constructor() {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** The proxy's URL, for a kubeconfig's `proxy-url`. */
  get url(): string {
    return `http://127.0.0.1:${this.#listener.addr.port}`;
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        this.#conns.add(conn);
        const tunnel = this.#serve(conn).finally(() => {
          closeQuietly(conn);
          this.#conns.delete(conn);
          this.#tunnels.delete(tunnel);
        });
        this.#tunnels.add(tunnel);
      }
    } catch (e) {
      // The listener was closed by dispose.
      if (!(e instanceof Deno.errors.BadResource)) throw e;
    }
  }

  /** Reads the request head; undefined when the client left or sent too much. */
  async #readHead(conn: Deno.Conn): Promise<{ head: string; rest: Uint8Array } | undefined> {
    let buffered = new Uint8Array(0);
    const chunk = new Uint8Array(4096);
    while (buffered.length < MAX_HEAD_BYTES) {
      const n = await conn.read(chunk);
      if (n === null) return undefined;
      const joined = new Uint8Array(buffered.length + n);
      joined.set(buffered);
      joined.set(chunk.subarray(0, n), buffered.length);
      buffered = joined;
      const end = headEnd(buffered);
      if (end >= 0) {
        return {
          head: new TextDecoder().decode(buffered.subarray(0, end)),
          rest: buffered.subarray(end),
        };
      }
    }
    return undefined;
  }

  async #serve(client: Deno.Conn): Promise<void> {
    let request;
    try {
      request = await this.#readHead(client);
    } catch {
      return; // The client went away (or dispose closed it) mid-head.
    }
    if (request === undefined) return;
    const m = /^CONNECT (\[[^\]]+\]|[^\s:]+):(\d+) HTTP\/1\.[01]\r\n/.exec(request.head);
    if (m === null) {
      await client.write(
        new TextEncoder().encode("HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n"),
      ).catch(() => {});
      return;
    }
    const hostname = m[1]!.replace(/^\[|\]$/g, "");
    this.targets.push(`${m[1]}:${m[2]}`);
    let upstream: Deno.Conn;
    try {
      upstream = await Deno.connect({ hostname, port: Number(m[2]) });
    } catch {
      await client.write(
        new TextEncoder().encode("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"),
      ).catch(() => {});
      return;
    }
    this.#conns.add(upstream);
    try {
      await client.write(new TextEncoder().encode("HTTP/1.1 200 Connection Established\r\n\r\n"));
      if (request.rest.length > 0) await upstream.write(request.rest);
      // When either side ends, both connections close: a tunnel has no half-open state worth keeping.
      const pipe = (from: Deno.Conn, to: Deno.Conn) =>
        from.readable.pipeTo(to.writable, { preventClose: true }).catch(() => {});
      const up = pipe(client, upstream);
      const down = pipe(upstream, client);
      await Promise.race([up, down]);
      closeQuietly(upstream);
      closeQuietly(client);
      await Promise.all([up, down]);
    } catch {
      // The client left before the tunnel was up.
    } finally {
      closeQuietly(upstream);
      this.#conns.delete(upstream);
    }
  }

  /** Stops listening, closes every tunnel and waits for them to end. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    for (const conn of this.#conns) closeQuietly(conn);
    await Promise.all([...this.#tunnels]);
  }
}
