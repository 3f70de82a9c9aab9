import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { Agent, fetch as undiciFetch } from "undici";
import { generateTlsMaterial, type TlsMaterial } from "../../lib/fake_apiserver/tls.ts";
import { integer, namedBits, oid, sequence, time } from "../../lib/fake_apiserver/_der.ts";

const versionInfo = { major: "1", minor: "32", gitVersion: "v1.32.0" };

/** Serves `/version` over HTTPS with the given material on an ephemeral port, and closes the server afterwards. */
async function withHttpsServer(
  material: TlsMaterial,
  use: (address: { port: number }) => Promise<void>,
  { hostname = "127.0.0.1" }: { hostname?: string } = {},
): Promise<void> {
  const server = Deno.serve(
    {
      hostname,
      port: 0,
      cert: material.certPem,
      key: material.keyPem,
      onListen() {},
      // Handshakes that clients abort on purpose are expected here, not worth a log line.
      onError: () => new Response("Internal Server Error", { status: 500 }),
    },
    (request) =>
      new URL(request.url).pathname === "/version"
        ? Response.json(versionInfo)
        : new Response("Not Found", { status: 404 }),
  );
  try {
    await use({ port: server.addr.port });
  } finally {
    await server.shutdown();
  }
}

/** Fetches `/version` through a Deno HTTP client that trusts only `caCertPem`. */
async function fetchVersionTrusting(caCertPem: string, url: string): Promise<unknown> {
  const client = Deno.createHttpClient({ caCerts: [caCertPem] });
  try {
    const response = await fetch(url, { client });
    assert.equal(response.status, 200);
    return await response.json();
  } finally {
    client.close();
  }
}

/** The error and its causes as one string, so a test can check why a connection failed. */
function describeError(error: unknown): string {
  const parts: string[] = [];
  for (let e = error; e !== undefined && e !== null; e = (e as { cause?: unknown }).cause) {
    parts.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
    if (!(e instanceof Error)) break;
  }
  return parts.join(" <- ");
}

/** Asserts that `promise` rejects and that the error chain says why, matching `reason`. */
async function assertRejectsBecause(promise: Promise<unknown>, reason: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.match(describeError(error), reason);
    return true;
  });
}

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

Deno.test("the DER encoder writes the canonical forms X.509 parsers insist on", async (t) => {
  await t.step("an INTEGER drops redundant zeros and keeps a zero before a set top bit", () => {
    assert.equal(hex(integer(Uint8Array.of(0, 0, 0x7f))), "02017f");
    assert.equal(hex(integer(Uint8Array.of(0x80, 1))), "0203008001");
    assert.equal(hex(integer(Uint8Array.of(0, 0))), "020100");
    assert.equal(hex(integer(2)), "020102");
  });
  await t.step("lengths of 128 bytes and more use the long form", () => {
    assert.equal(hex(sequence(new Uint8Array(127))).slice(0, 4), "307f");
    assert.equal(hex(sequence(new Uint8Array(128))).slice(0, 6), "308180");
    assert.equal(hex(sequence(new Uint8Array(300))).slice(0, 8), "3082012c");
  });
  await t.step("an OBJECT IDENTIFIER packs its arcs in base 128", () => {
    assert.equal(hex(oid("1.2.840.10045.4.3.2")), "06082a8648ce3d040302");
  });
  await t.step("a named-bit BIT STRING drops trailing zero bits", () => {
    // digitalSignature, keyCertSign, cRLSign: 1000 0110, one unused bit.
    assert.equal(hex(namedBits([0, 5, 6])), "03020186");
    assert.equal(hex(namedBits([0])), "03020780");
  });
  await t.step("times before 2050 are UTCTime, later ones GeneralizedTime", () => {
    const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes.subarray(2));
    const utc = time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59)));
    assert.equal(utc[0], 0x17);
    assert.equal(text(utc), "491231235959Z");
    const generalized = time(new Date(Date.UTC(2050, 0, 1, 0, 0, 0)));
    assert.equal(generalized[0], 0x18);
    assert.equal(text(generalized), "20500101000000Z");
  });
});

Deno.test("generateTlsMaterial returns PEM with 64-column lines and a PKCS#8 key", async () => {
  const material = await generateTlsMaterial();
  for (
    const [pem, label] of [
      [material.caCertPem, "CERTIFICATE"],
      [material.certPem, "CERTIFICATE"],
      [material.keyPem, "PRIVATE KEY"],
    ] as const
  ) {
    const lines = pem.trimEnd().split("\n");
    assert.equal(lines[0], `-----BEGIN ${label}-----`);
    assert.equal(lines.at(-1), `-----END ${label}-----`);
    const body = lines.slice(1, -1);
    assert.ok(body.length > 0);
    for (const line of body.slice(0, -1)) assert.equal(line.length, 64);
    assert.ok(body.at(-1)!.length <= 64);
    assert.match(body.join(""), /^[A-Za-z0-9+/]+=*$/);
  }
  const pkcs8 = Uint8Array.from(
    atob(material.keyPem.replace(/-----[A-Z ]+-----|\n/g, "")),
    (c) => c.charCodeAt(0),
  );
  const key = await crypto.subtle.importKey(
    "pkcs8",
    pkcs8,
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign"],
  );
  assert.equal(key.type, "private");
});

Deno.test("the CA certificate is a self-signed CA allowed to sign certificates", async () => {
  const ca = new X509Certificate((await generateTlsMaterial()).caCertPem);
  assert.equal(ca.ca, true);
  assert.equal(ca.subject, "CN=kevents-fake-apiserver CA");
  assert.equal(ca.issuer, ca.subject);
  assert.ok(ca.checkIssued(ca));
  assert.ok(ca.verify(ca.publicKey));
  assert.deepEqual(ca.keyUsage, ["DigitalSignature", "KeyCertSign", "CRLSign"]);
  assert.equal(ca.publicKey.asymmetricKeyType, "ec");
});

Deno.test("the server certificate is signed by the CA and is not a CA itself", async () => {
  const material = await generateTlsMaterial({ commonName: "unit-test-server" });
  const ca = new X509Certificate(material.caCertPem);
  const cert = new X509Certificate(material.certPem);
  const stranger = new X509Certificate((await generateTlsMaterial()).caCertPem);
  assert.equal(cert.ca, false);
  assert.equal(cert.subject, "CN=unit-test-server");
  assert.equal(cert.issuer, ca.subject);
  assert.ok(cert.checkIssued(ca));
  assert.ok(cert.verify(ca.publicKey));
  assert.equal(cert.verify(stranger.publicKey), false);
  assert.deepEqual(cert.keyUsage, ["DigitalSignature"]);
});

Deno.test("the server certificate names every requested host and no other", async () => {
  const cert = new X509Certificate(
    (await generateTlsMaterial({
      hosts: ["127.0.0.1", "localhost", "::1", "api.kevents.test", "10.1.2.3", "2001:db8::5"],
    })).certPem,
  );
  assert.equal(cert.checkIP("127.0.0.1"), "127.0.0.1");
  assert.equal(cert.checkIP("::1"), "::1");
  assert.equal(cert.checkIP("10.1.2.3"), "10.1.2.3");
  assert.equal(cert.checkIP("2001:db8::5"), "2001:db8::5");
  assert.equal(cert.checkHost("localhost"), "localhost");
  assert.equal(cert.checkHost("api.kevents.test"), "api.kevents.test");
  assert.equal(cert.checkIP("127.0.0.2"), undefined);
  assert.equal(cert.checkHost("kevents.test"), undefined);
  // IPs must be iPAddress entries: a dNSName "127.0.0.1" would not be matched by IP-checking clients.
  assert.doesNotMatch(cert.subjectAltName ?? "", /DNS:[0-9:.]+(,|$)/);
});

Deno.test("the validity starts a few minutes in the past and lasts validDays", async () => {
  const before = Date.now();
  const cert = new X509Certificate((await generateTlsMaterial({ validDays: 30 })).certPem);
  const after = Date.now();
  const from = cert.validFromDate.getTime();
  const to = cert.validToDate.getTime();
  assert.ok(from <= before - 60_000, "notBefore leaves room for a client clock that lags");
  assert.ok(from >= before - 15 * 60_000, "notBefore is only minutes in the past");
  const day = 24 * 60 * 60_000;
  assert.ok(to >= before + 30 * day - 1000 && to <= after + 30 * day);
});

Deno.test("a certificate valid beyond 2049 encodes its end as GeneralizedTime", async () => {
  const validDays = 40 * 366;
  const material = await generateTlsMaterial({ validDays });
  const expectedYear = new Date(Date.now() + validDays * 24 * 60 * 60_000).getUTCFullYear();
  // A two-digit UTCTime year past 49 would be read back as 19xx.
  assert.ok(expectedYear > 2049);
  assert.equal(new X509Certificate(material.certPem).validToDate.getUTCFullYear(), expectedYear);
  await withHttpsServer(material, async ({ port }) => {
    assert.deepEqual(
      await fetchVersionTrusting(material.caCertPem, `https://127.0.0.1:${port}/version`),
      versionInfo,
    );
  });
});

Deno.test("every call makes a new CA and new serial numbers", async () => {
  const first = await generateTlsMaterial();
  const second = await generateTlsMaterial();
  const certs = [first.caCertPem, first.certPem, second.caCertPem, second.certPem].map((pem) =>
    new X509Certificate(pem)
  );
  assert.equal(new Set(certs.map((c) => c.serialNumber)).size, 4);
  assert.equal(new Set(certs.map((c) => c.fingerprint256)).size, 4);
  for (const cert of certs) {
    // Positive and at most 20 octets, as RFC 5280 asks.
    assert.match(cert.serialNumber, /^[0-7][0-9A-F]{1,39}$/);
  }
  assert.notEqual(first.keyPem, second.keyPem);
});

Deno.test("invalid options are rejected with a RangeError that names the problem", async () => {
  await assert.rejects(generateTlsMaterial({ hosts: [] }), {
    name: "RangeError",
    message: "Cannot generate TLS material: hosts must name at least one host",
  });
  await assert.rejects(generateTlsMaterial({ hosts: ["not a host"] }), {
    name: "RangeError",
    message:
      'Cannot generate TLS material: host "not a host" is neither an IP address nor a DNS name',
  });
  for (const validDays of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    await assert.rejects(generateTlsMaterial({ validDays }), {
      name: "RangeError",
      message: `Cannot generate TLS material: validDays ${validDays} must be positive`,
    });
  }
  await assert.rejects(generateTlsMaterial({ validDays: 1e9 }), {
    name: "RangeError",
    message: "Cannot generate TLS material: validDays 1000000000 ends after year 9999",
  });
  await assert.rejects(generateTlsMaterial({ commonName: "" }), {
    name: "RangeError",
    message: "Cannot generate TLS material: commonName must not be empty",
  });
});

Deno.test("a server certificate generated for 127.0.0.1 is trusted by fetch with only the generated CA", async (t) => {
  const material = await generateTlsMaterial({ hosts: ["127.0.0.1"] });
  await withHttpsServer(material, async ({ port }) => {
    const url = `https://127.0.0.1:${port}/version`;
    assert.deepEqual(await fetchVersionTrusting(material.caCertPem, url), versionInfo);

    await t.step("the same client rejects the server without the CA", async () => {
      await assertRejectsBecause(fetch(url), /UnknownIssuer/);
    });

    await t.step("a client trusting another generated CA rejects the server", async () => {
      // Both CAs carry the same subject, so only the signature tells them apart.
      const other = await generateTlsMaterial({ hosts: ["127.0.0.1"] });
      await assertRejectsBecause(fetchVersionTrusting(other.caCertPem, url), /BadSignature/);
    });
  });
});

Deno.test("a client rejects a certificate that does not name the address it dialled", async () => {
  const material = await generateTlsMaterial({ hosts: ["localhost", "127.0.0.2"] });
  await withHttpsServer(material, async ({ port }) => {
    await assertRejectsBecause(
      fetchVersionTrusting(material.caCertPem, `https://127.0.0.1:${port}/version`),
      /not valid for name "127\.0\.0\.1"/,
    );
  });
});

Deno.test("a certificate for the default hosts is trusted over IPv6 at [::1]", async () => {
  let probe: Deno.Listener;
  try {
    probe = Deno.listen({ hostname: "::1", port: 0 });
  } catch (error) {
    console.log(`Skipping IPv6 check: cannot listen on [::1]: ${describeError(error)}`);
    return;
  }
  probe.close();
  const material = await generateTlsMaterial();
  await withHttpsServer(material, async ({ port }) => {
    assert.deepEqual(
      await fetchVersionTrusting(material.caCertPem, `https://[::1]:${port}/version`),
      versionInfo,
    );
  }, { hostname: "::1" });
});

Deno.test("undici trusts the generated CA", async (t) => {
  const material = await generateTlsMaterial();
  await withHttpsServer(material, async ({ port }) => {
    const url = `https://127.0.0.1:${port}/version`;

    const agent = new Agent({ connect: { ca: material.caCertPem } });
    try {
      const response = await undiciFetch(url, { dispatcher: agent });
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), versionInfo);
    } finally {
      await agent.close();
    }

    await t.step("undici checks the DNS name it sends as server name", async () => {
      const byName = new Agent({ connect: { ca: material.caCertPem, servername: "localhost" } });
      try {
        const response = await undiciFetch(url, { dispatcher: byName });
        assert.deepEqual(await response.json(), versionInfo);
      } finally {
        await byName.close();
      }
      const wrongName = new Agent({
        connect: { ca: material.caCertPem, servername: "elsewhere.kevents.test" },
      });
      try {
        await assertRejectsBecause(
          undiciFetch(url, { dispatcher: wrongName }),
          /does not match certificate's altnames/,
        );
      } finally {
        await wrongName.close();
      }
    });

    await t.step("undici rejects the server with another CA", async () => {
      const other = await generateTlsMaterial();
      const stranger = new Agent({ connect: { ca: other.caCertPem } });
      try {
        await assertRejectsBecause(
          undiciFetch(url, { dispatcher: stranger }),
          /unable to verify the first certificate/,
        );
      } finally {
        await stranger.close();
      }
    });
  });
});

/** Runs `kubectl version -o json` against `server` with a kubeconfig trusting `caCertPem`. */
async function kubectlVersion(
  options: { server: string; caCertPem: string; tlsServerName?: string },
): Promise<Deno.CommandOutput> {
  const dir = await Deno.makeTempDir({ prefix: "kevents_tls_test_" });
  try {
    const kubeconfig = `${dir}/kubeconfig`;
    const cluster: Record<string, string> = {
      server: options.server,
      "certificate-authority-data": btoa(options.caCertPem),
    };
    if (options.tlsServerName !== undefined) cluster["tls-server-name"] = options.tlsServerName;
    // JSON is valid YAML, and kubectl reads either.
    await Deno.writeTextFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "fake", cluster }],
        // Without any credential kubectl would prompt for a username on stdin.
        users: [{ name: "tester", user: { token: "kevents-test-token" } }],
        contexts: [{ name: "fake", context: { cluster: "fake", user: "tester" } }],
        "current-context": "fake",
      }),
    );
    return await new Deno.Command("kubectl", {
      args: [
        "--kubeconfig",
        kubeconfig,
        "--cache-dir",
        `${dir}/cache`,
        "--request-timeout",
        "20s",
        "version",
        "-o",
        "json",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function kubectlAvailable(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("kubectl", {
      args: ["version", "--client", "-o", "json"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

Deno.test("kubectl trusts the generated CA", async (t) => {
  if (!(await kubectlAvailable())) {
    console.log("Skipping kubectl checks: kubectl is not installed");
    return;
  }
  const material = await generateTlsMaterial();
  const decoder = new TextDecoder();
  await withHttpsServer(material, async ({ port }) => {
    const server = `https://127.0.0.1:${port}`;

    const output = await kubectlVersion({ server, caCertPem: material.caCertPem });
    assert.ok(output.success, `kubectl failed: ${decoder.decode(output.stderr)}`);
    const version = JSON.parse(decoder.decode(output.stdout));
    assert.equal(version.serverVersion?.gitVersion, "v1.32.0");

    await t.step("kubectl checks the DNS name given as tls-server-name", async () => {
      const byName = await kubectlVersion({
        server,
        caCertPem: material.caCertPem,
        tlsServerName: "localhost",
      });
      assert.ok(byName.success, `kubectl failed: ${decoder.decode(byName.stderr)}`);
      const wrongName = await kubectlVersion({
        server,
        caCertPem: material.caCertPem,
        tlsServerName: "elsewhere.kevents.test",
      });
      assert.equal(wrongName.success, false);
      assert.match(decoder.decode(wrongName.stderr), /certificate is valid for/);
    });

    await t.step("kubectl rejects the server with another CA", async () => {
      const other = await generateTlsMaterial();
      const rejected = await kubectlVersion({ server, caCertPem: other.caCertPem });
      assert.equal(rejected.success, false);
      assert.match(
        decoder.decode(rejected.stderr),
        /x509: certificate signed by unknown authority/,
      );
    });
  });
});
