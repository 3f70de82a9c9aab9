/**
 * The HTTP/1.1 connection pool every request to the API server goes
 * through. Deno's own fetch with a `Deno.createHttpClient` is the default:
 * on our machines it reads a watch 1.7-2.3x faster than undici and keeps a
 * process ~13 MiB smaller (docs/BENCHMARKS.md, "HTTP client"). It cannot
 * skip TLS verification or verify another name than the URL's, so a
 * kubeconfig with `insecure-skip-tls-verify` or `tls-server-name` gets an
 * undici pool instead, loaded only then.
 *
 * HTTP/2 is never offered: over HTTP/2 a GOAWAY can crash a Deno process.
 *
 * @module
 */

/** A request; `signal` aborts it and its body. */
export interface HttpRequest {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal: AbortSignal;
}

/** An answer whose body is read as a stream. */
export interface HttpResponse {
  status: number;
  /** A header's value, or null. */
  header(name: string): string | null;
  body: ReadableStream<Uint8Array> | null;
}

/** A pool of HTTP/1.1 connections to one API server. */
export interface HttpTransport {
  /** "native" (Deno's fetch) or "undici". */
  readonly kind: "native" | "undici";
  send(request: HttpRequest): Promise<HttpResponse>;
  /** Closes the pool's connections. */
  close(): Promise<void>;
}

/** How to reach the server: the kubeconfig's TLS settings and proxy. */
export interface TransportSettings {
  /** PEM CA bundle. */
  ca?: string;
  /** PEM client certificate and key. */
  cert?: string;
  key?: string;
  skipTLSVerify: boolean;
  tlsServerName?: string;
  proxyUrl?: string;
  /** Idle keep-alive connections are closed after this long (default 30 s). */
  keepAliveTimeoutMs?: number;
}

/** Why `settings` need undici rather than Deno's fetch, or undefined when they do not. */
export function undiciNeededFor(settings: TransportSettings): string | undefined {
  if (settings.skipTLSVerify) return "insecure-skip-tls-verify";
  if (settings.tlsServerName !== undefined) return "tls-server-name";
  return undefined;
}

/** Opens the pool `settings` call for: Deno's fetch, or undici where it cannot do. */
export async function openTransport(settings: TransportSettings): Promise<HttpTransport> {
  return undiciNeededFor(settings) === undefined
    ? new NativeTransport(settings)
    : await openUndiciTransport(settings);
}

/**
 * Deno's fetch over one `Deno.createHttpClient`. Note: Deno trusts
 * `caCerts` in addition to its default root store (Mozilla's, unless
 * DENO_TLS_CA_STORE says otherwise), where client-go trusts only the
 * kubeconfig's CA.
 */
export class NativeTransport implements HttpTransport {
  readonly kind = "native";
  readonly #client: Deno.HttpClient;

  constructor(settings: TransportSettings) {
    const options: Deno.CreateHttpClientOptions & { cert?: string; key?: string } = {
      http1: true,
      http2: false,
      poolIdleTimeout: settings.keepAliveTimeoutMs ?? 30_000,
    };
    if (settings.ca !== undefined) options.caCerts = [settings.ca];
    if (settings.cert !== undefined && settings.key !== undefined) {
      options.cert = settings.cert;
      options.key = settings.key;
    }
    if (settings.proxyUrl !== undefined) options.proxy = proxyOf(settings.proxyUrl);
    this.#client = Deno.createHttpClient(options);
  }

  async send(request: HttpRequest): Promise<HttpResponse> {
    const res = await fetch(request.url, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      signal: request.signal,
      client: this.#client,
    });
    return { status: res.status, header: (name) => res.headers.get(name), body: res.body };
  }

  close(): Promise<void> {
    this.#client.close();
    return Promise.resolve();
  }
}

/** A proxy URL as Deno's client takes it, with its credentials apart. */
function proxyOf(proxyUrl: string): Deno.Proxy {
  const url = new URL(proxyUrl);
  const proxy: Deno.Proxy = { url: `${url.protocol}//${url.host}` };
  if (url.username !== "" || url.password !== "") {
    proxy.basicAuth = {
      username: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
    };
  }
  return proxy;
}

/**
 * undici's `dispatcher.request()` (not its fetch: under Deno, undici's
 * fetch never errors a body whose connection breaks), loaded on first use.
 */
async function openUndiciTransport(settings: TransportSettings): Promise<HttpTransport> {
  const { Agent, ProxyAgent } = await import("undici");
  const tls: Record<string, unknown> = {};
  if (settings.ca !== undefined) tls.ca = settings.ca;
  if (settings.cert !== undefined && settings.key !== undefined) {
    tls.cert = settings.cert;
    tls.key = settings.key;
  }
  if (settings.skipTLSVerify) tls.rejectUnauthorized = false;
  if (settings.tlsServerName !== undefined) tls.servername = settings.tlsServerName;
  const keepAlive = settings.keepAliveTimeoutMs ?? 30_000;
  const pool = { allowH2: false, keepAliveTimeout: keepAlive, keepAliveMaxTimeout: keepAlive };
  const dispatcher = settings.proxyUrl === undefined
    ? new Agent({ ...pool, connect: tls })
    : new ProxyAgent({ ...pool, uri: settings.proxyUrl, requestTls: tls });
  return {
    kind: "undici",
    async send(request: HttpRequest): Promise<HttpResponse> {
      const res = await dispatcher.request({
        origin: request.url.origin,
        path: request.url.pathname + request.url.search,
        method: request.method as "GET",
        headers: request.headers,
        body: request.body,
        signal: request.signal,
      });
      return {
        status: res.statusCode,
        header: (name) => {
          const value = res.headers[name.toLowerCase()];
          return (Array.isArray(value) ? value[0] : value) ?? null;
        },
        body: ReadableStream.from(res.body as AsyncIterable<Uint8Array>),
      };
    },
    close: () => dispatcher.destroy(),
  };
}

/** errno names of the OS errors a connection commonly fails with (Linux numbers). */
const OS_ERRORS: Readonly<Record<string, string>> = {
  "101": "ENETUNREACH",
  "104": "ECONNRESET",
  "110": "ETIMEDOUT",
  "111": "ECONNREFUSED",
  "113": "EHOSTUNREACH",
};

/**
 * A failed request's cause in a few words, with the errno name first when
 * there is one (`ECONNREFUSED (tcp connect error: Connection refused)`):
 * Deno's fetch repeats the URL and nests its causes; undici gives a code.
 */
export function describeNetworkError(e: unknown): string {
  // A credential plugin's failure says everything itself (its cause is a detail).
  if (e instanceof Error && e.name === "ExecCredentialError") return e.message;
  const err = e as {
    code?: unknown;
    message?: unknown;
    cause?: { code?: unknown; message?: unknown };
  };
  const code = typeof err?.code === "string"
    ? err.code
    : typeof err?.cause?.code === "string"
    ? err.cause.code
    : undefined;
  let message = typeof err?.cause?.message === "string" && err.cause.message !== ""
    ? err.cause.message
    : e instanceof Error
    ? e.message
    : String(e);
  // Deno: "error sending request for url (URL): client error (Connect): tcp connect error: ..."
  message = message.replace(/^error sending request for url \([^)]*\): /, "")
    .replace(/^client error \((\w+)\): /, "");
  const errno = /\(os error (\d+)\)/.exec(message)?.[1];
  const name = code ?? (errno === undefined ? undefined : OS_ERRORS[errno]);
  if (name === undefined && /dns error|failed to lookup address/i.test(message)) {
    return `ENOTFOUND (${message})`;
  }
  return name !== undefined && !message.includes(name) ? `${name} (${message})` : message;
}
