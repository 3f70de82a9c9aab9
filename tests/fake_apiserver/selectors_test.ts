import assert from "node:assert/strict";
import {
  checkFieldSelector,
  escapeFieldSelectorValue,
  fieldsOf,
  parseFieldSelector,
  parseLabelSelector,
  SelectorError,
} from "../../lib/fake_apiserver/selectors.ts";

const KEY_RULE =
  "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const VALUE_RULE =
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const GENERIC_ONLY = 'is not a known field selector: only "metadata.name", "metadata.namespace"';

function event(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Event",
    metadata: { name: "web-1.17a", namespace: "shop" },
    involvedObject: {
      kind: "Pod",
      namespace: "shop",
      name: "web-1",
      uid: "0c6e-uid",
      apiVersion: "v1",
      resourceVersion: "812",
      fieldPath: "spec.containers{app}",
    },
    reason: "BackOff",
    type: "Warning",
    source: { component: "kubelet", host: "node-a" },
    ...overrides,
  };
}

function rejects(fn: () => unknown, message: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof SelectorError, `expected SelectorError, got ${error}`);
    assert.equal(error.message, message);
    return true;
  });
}

Deno.test("field selector parsing", async (t) => {
  const cases: {
    name: string;
    text: string;
    requirements: { field: string; operator: "=" | "!="; value: string }[];
    canonical: string;
  }[] = [
    {
      name: "an empty selector has no terms",
      text: "",
      requirements: [],
      canonical: "",
    },
    {
      name: "a single equality term is kept as written",
      text: "reason=BackOff",
      requirements: [{ field: "reason", operator: "=", value: "BackOff" }],
      canonical: "reason=BackOff",
    },
    {
      name: "== means the same as = and prints as =",
      text: "reason==BackOff",
      requirements: [{ field: "reason", operator: "=", value: "BackOff" }],
      canonical: "reason=BackOff",
    },
    {
      name: "!= is an inequality term",
      text: "type!=Normal",
      requirements: [{ field: "type", operator: "!=", value: "Normal" }],
      canonical: "type!=Normal",
    },
    {
      name: "comma-separated terms are sorted as raw text, as the server does",
      text: "type!=Normal,involvedObject.kind=Pod",
      requirements: [
        { field: "involvedObject.kind", operator: "=", value: "Pod" },
        { field: "type", operator: "!=", value: "Normal" },
      ],
      canonical: "involvedObject.kind=Pod,type!=Normal",
    },
    {
      name: "escaped comma, equals sign and backslash are data in the value",
      text: String.raw`reason=a\,b\=c\\d`,
      requirements: [{ field: "reason", operator: "=", value: String.raw`a,b=c\d` }],
      canonical: String.raw`reason=a\,b\=c\\d`,
    },
    {
      name: "an empty value is allowed",
      text: "type=",
      requirements: [{ field: "type", operator: "=", value: "" }],
      canonical: "type=",
    },
    {
      name: "empty terms from stray commas are ignored",
      text: ",reason=BackOff,,",
      requirements: [{ field: "reason", operator: "=", value: "BackOff" }],
      canonical: "reason=BackOff",
    },
    {
      name: "a term with neither field nor value is dropped",
      text: "=,!=",
      requirements: [],
      canonical: "",
    },
    {
      name: "the field is split at the first operator and not trimmed",
      text: "a b = c",
      requirements: [{ field: "a b ", operator: "=", value: " c" }],
      canonical: "a b = c",
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const selector = parseFieldSelector(c.text);
      assert.deepEqual(selector.requirements, c.requirements);
      assert.equal(selector.toString(), c.canonical);
      assert.equal(selector.isEmpty(), c.requirements.length === 0);
    });
  }
});

Deno.test("field selector syntax errors carry the API server's message", async (t) => {
  const cases: { name: string; text: string; message: string }[] = [
    {
      name: "a bare word is rejected with the API server's message",
      text: "a",
      message: "invalid selector: 'a'; can't understand 'a'",
    },
    {
      name: "the whole selector and the bad term are both quoted",
      text: "reason=BackOff,Pod",
      message: "invalid selector: 'reason=BackOff,Pod'; can't understand 'Pod'",
    },
    {
      name: "the first bad term in sorted order is the one reported",
      text: "zeta,alpha",
      message: "invalid selector: 'zeta,alpha'; can't understand 'alpha'",
    },
    {
      name: "an unescaped = in a value is reported by its code point",
      text: "reason=a=b",
      message: "invalid field selector: unescaped character in value: 61",
    },
    {
      name: "an unknown escape sequence is rejected",
      text: String.raw`reason=a\qb`,
      message: String.raw`invalid field selector: invalid escape sequence: \q`,
    },
    {
      name: "a trailing backslash is rejected",
      text: "reason=a\\",
      message: "invalid field selector: invalid escape sequence: \\",
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => rejects(() => parseFieldSelector(c.text), c.message));
  }

  await t.step("the error has the BadRequest status the server answers with", () => {
    try {
      parseFieldSelector("a");
      assert.fail("expected a SelectorError");
    } catch (error) {
      assert.ok(error instanceof SelectorError);
      assert.equal(error.code, 400);
      assert.equal(error.reason, "BadRequest");
      assert.equal(error.name, "SelectorError");
    }
  });
});

Deno.test("field selectors match core/v1 events by their selectable fields", async (t) => {
  const podEvent = event();
  const nodeEvent = event({
    metadata: { name: "node-a.17b", namespace: "default" },
    involvedObject: { kind: "Node", name: "node-a", uid: "node-uid", apiVersion: "v1" },
    reason: "NodeReady",
    type: "Normal",
  });
  const untypedEvent = event({ type: undefined, reason: undefined });
  const newStyleEvent = event({
    source: {},
    reportingComponent: "scheduler",
    reportingInstance: "scheduler-0",
  });

  const cases: {
    name: string;
    selector: string;
    object: Record<string, unknown>;
    matches: boolean;
  }[] = [
    {
      name: "an involvedObject.kind selector matches an event about that kind",
      selector: "involvedObject.kind=Pod",
      object: podEvent,
      matches: true,
    },
    {
      name: "an involvedObject.kind selector does not match events about other kinds",
      selector: "involvedObject.kind=Pod",
      object: nodeEvent,
      matches: false,
    },
    {
      name: "every involvedObject field is selectable",
      selector:
        "involvedObject.namespace=shop,involvedObject.name=web-1,involvedObject.uid=0c6e-uid," +
        "involvedObject.apiVersion=v1,involvedObject.resourceVersion=812," +
        "involvedObject.fieldPath=spec.containers{app}",
      object: podEvent,
      matches: true,
    },
    {
      name: "all terms must hold",
      selector: "involvedObject.kind=Pod,reason=NodeReady",
      object: podEvent,
      matches: false,
    },
    {
      name: "type!=Normal matches a Warning event",
      selector: "type!=Normal",
      object: podEvent,
      matches: true,
    },
    {
      name: "type!=Normal does not match a Normal event",
      selector: "type!=Normal",
      object: nodeEvent,
      matches: false,
    },
    {
      name: "a missing field counts as empty, so type!=Normal matches an event with no type",
      selector: "type!=Normal",
      object: untypedEvent,
      matches: true,
    },
    {
      name: "a missing field matches an empty value",
      selector: "reason=,type==",
      object: untypedEvent,
      matches: true,
    },
    {
      name: "source is source.component when it is set",
      selector: "source=kubelet",
      object: podEvent,
      matches: true,
    },
    {
      name: "source falls back to reportingComponent when source.component is empty",
      selector: "source=scheduler,reportingComponent=scheduler",
      object: newStyleEvent,
      matches: true,
    },
    {
      name: "reportingComponent does not fall back to source.component",
      selector: "reportingComponent=kubelet",
      object: podEvent,
      matches: false,
    },
    {
      name: "metadata.namespace and metadata.name are selectable on events",
      selector: "metadata.namespace=shop,metadata.name=web-1.17a",
      object: podEvent,
      matches: true,
    },
    {
      name: "an escaped value matches the literal text",
      selector: String.raw`reason=a\,b`,
      object: event({ reason: "a,b" }),
      matches: true,
    },
    {
      name: "the empty selector matches everything",
      selector: "",
      object: nodeEvent,
      matches: true,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const selector = parseFieldSelector(c.selector);
      checkFieldSelector("events", selector);
      assert.equal(selector.matches(fieldsOf("events", c.object)), c.matches);
    });
  }
});

Deno.test("selectable fields per resource", async (t) => {
  await t.step("an event exposes exactly the fields the API server indexes", () => {
    assert.deepEqual(fieldsOf("events", event()), {
      "involvedObject.kind": "Pod",
      "involvedObject.namespace": "shop",
      "involvedObject.name": "web-1",
      "involvedObject.uid": "0c6e-uid",
      "involvedObject.apiVersion": "v1",
      "involvedObject.resourceVersion": "812",
      "involvedObject.fieldPath": "spec.containers{app}",
      "reason": "BackOff",
      "reportingComponent": "",
      "source": "kubelet",
      "type": "Warning",
      "metadata.name": "web-1.17a",
      "metadata.namespace": "shop",
    });
  });

  await t.step("a namespace exposes its name and phase but no metadata.namespace", () => {
    const ns = { metadata: { name: "shop" }, status: { phase: "Terminating" } };
    assert.deepEqual(fieldsOf("namespaces", ns), {
      "metadata.name": "shop",
      "status.phase": "Terminating",
      "name": "shop",
    });
  });

  await t.step("a configmap exposes only its name and namespace", () => {
    const cm = { metadata: { name: "settings", namespace: "shop" }, data: { a: "b" } };
    assert.deepEqual(fieldsOf("configmaps", cm), {
      "metadata.name": "settings",
      "metadata.namespace": "shop",
    });
  });

  await t.step("resources the module does not know get the generic fields", () => {
    const lease = { metadata: { name: "kevents", namespace: "ops" }, spec: {} };
    assert.deepEqual(fieldsOf("leases", lease), {
      "metadata.name": "kevents",
      "metadata.namespace": "ops",
    });
  });

  await t.step("missing metadata reads as empty strings", () => {
    assert.deepEqual(fieldsOf("configmaps", {}), {
      "metadata.name": "",
      "metadata.namespace": "",
    });
  });

  await t.step("pod fields use the API server's defaults and first pod IP", () => {
    const pod = {
      metadata: { name: "web-1", namespace: "shop" },
      spec: { nodeName: "node-a" },
      status: { phase: "Running", podIP: "10.0.0.9", podIPs: [{ ip: "10.0.0.7" }] },
    };
    const fields = fieldsOf("pods", pod);
    assert.equal(fields["spec.hostNetwork"], "false");
    assert.equal(fields["status.podIP"], "10.0.0.7");
    assert.ok(parseFieldSelector("spec.nodeName=node-a,status.phase=Running").matches(fields));
  });
});

Deno.test("field selector checks against the resource's supported fields", async (t) => {
  const rejected: { name: string; resource: string; selector: string; message: string }[] = [
    {
      name: "an unknown field is rejected for events",
      resource: "events",
      selector: "foo=bar",
      message: "field label not supported: foo",
    },
    {
      name: "an events.k8s.io field name is not a core/v1 event field",
      resource: "events",
      selector: "regarding.kind=Pod",
      message: "field label not supported: regarding.kind",
    },
    {
      name: "an unknown field is rejected for configmaps with the generic message",
      resource: "configmaps",
      selector: "foo=bar",
      message: `"foo" ${GENERIC_ONLY}`,
    },
    {
      name: "an unknown field is rejected for leases with the generic message",
      resource: "leases",
      selector: "spec.holderIdentity=me",
      message: `"spec.holderIdentity" ${GENERIC_ONLY}`,
    },
    {
      name: "the generic message quotes the field the way Go does",
      resource: "configmaps",
      selector: 'say"hi"\t=x',
      message: `"say\\"hi\\"\\t" ${GENERIC_ONLY}`,
    },
    {
      name: "an unknown field is rejected for namespaces",
      resource: "namespaces",
      selector: "spec.finalizers=kubernetes",
      message: "field label not supported: spec.finalizers",
    },
    {
      name: "namespaces do not accept metadata.namespace",
      resource: "namespaces",
      selector: "metadata.namespace=default",
      message: "field label not supported: metadata.namespace",
    },
    {
      name: "the first unsupported field in sorted order is reported",
      resource: "events",
      selector: "zzz=1,reason=x,aaa=2",
      message: "field label not supported: aaa",
    },
  ];
  for (const c of rejected) {
    await t.step(c.name, () => {
      const selector = parseFieldSelector(c.selector);
      rejects(() => checkFieldSelector(c.resource, selector), c.message);
    });
  }

  const namespaced = [
    "events",
    "configmaps",
    "endpoints",
    "serviceaccounts",
    "leases",
    "secrets",
    "pods",
    "services",
    "roles",
    "deployments",
  ];
  for (const resource of namespaced) {
    await t.step(`metadata.namespace and metadata.name are accepted for ${resource}`, () => {
      checkFieldSelector(resource, parseFieldSelector("metadata.namespace=shop,metadata.name!=x"));
    });
  }

  for (const resource of ["namespaces", "nodes", "componentstatuses", "clusterroles"]) {
    await t.step(`metadata.name is accepted for cluster-scoped ${resource}`, () => {
      checkFieldSelector(resource, parseFieldSelector("metadata.name=x"));
    });
  }

  await t.step("a cluster-scoped object matches only an empty metadata.namespace", () => {
    const cs = { metadata: { name: "etcd-0" } };
    const selector = parseFieldSelector("metadata.namespace=default");
    checkFieldSelector("componentstatuses", selector);
    assert.equal(selector.matches(fieldsOf("componentstatuses", cs)), false);
    assert.equal(
      parseFieldSelector("metadata.namespace=").matches(fieldsOf("componentstatuses", cs)),
      true,
    );
  });

  await t.step("namespaces accept status.phase and match on it", () => {
    const selector = parseFieldSelector("status.phase=Active");
    checkFieldSelector("namespaces", selector);
    const active = { metadata: { name: "shop" }, status: { phase: "Active" } };
    const leaving = { metadata: { name: "old" }, status: { phase: "Terminating" } };
    assert.equal(selector.matches(fieldsOf("namespaces", active)), true);
    assert.equal(selector.matches(fieldsOf("namespaces", leaving)), false);
  });

  await t.step("every documented core/v1 event field is accepted", () => {
    const all = Object.keys(fieldsOf("events", event())).map((f) => `${f}=x`).join(",");
    checkFieldSelector("events", parseFieldSelector(all));
  });

  await t.step("an empty selector passes the check for any resource", () => {
    checkFieldSelector("namespaces", parseFieldSelector(""));
    checkFieldSelector("configmaps", parseFieldSelector("="));
  });
});

Deno.test("escaping a field selector value round-trips through the parser", async (t) => {
  for (const value of ["plain", "a,b", "x=y", String.raw`back\slash`, String.raw`\,=`, ""]) {
    await t.step(`value ${JSON.stringify(value)}`, () => {
      const selector = parseFieldSelector(`reason=${escapeFieldSelectorValue(value)}`);
      assert.deepEqual(selector.requirements, [{ field: "reason", operator: "=", value }]);
    });
  }
});

Deno.test("label selector parsing and canonical form", async (t) => {
  const cases: { name: string; text: string; canonical: string }[] = [
    { name: "an empty selector", text: "", canonical: "" },
    { name: "= keeps its spelling", text: "app=web", canonical: "app=web" },
    { name: "== keeps its spelling", text: "app==web", canonical: "app==web" },
    { name: "!= is an inequality", text: "app!=web", canonical: "app!=web" },
    { name: "a bare key means the label exists", text: "app", canonical: "app" },
    { name: "!key means the label does not exist", text: "!app", canonical: "!app" },
    {
      name: "in lists its values sorted",
      text: "tier in (web, api)",
      canonical: "tier in (api,web)",
    },
    { name: "notin with one value", text: "tier notin (db)", canonical: "tier notin (db)" },
    { name: "empty parentheses hold the empty value", text: "tier in ()", canonical: "tier in ()" },
    {
      name: "empty items in a set are one empty value",
      text: "x in (foo,,baz),y,z notin ()",
      canonical: "x in (,baz,foo),y,z notin ()",
    },
    {
      name: "in and notin are plain values inside a set",
      text: "a in (in,notin)",
      canonical: "a in (in,notin)",
    },
    { name: "requirements are sorted by key", text: "b=1,a=2,!c", canonical: "a=2,b=1,!c" },
    {
      name: "whitespace around tokens is ignored",
      text: " app = web ,\ttier ",
      canonical: "app=web,tier",
    },
    { name: "an empty value is allowed", text: "app=", canonical: "app=" },
    {
      name: "a prefixed key is allowed",
      text: "app.kubernetes.io/name=web",
      canonical: "app.kubernetes.io/name=web",
    },
    {
      name: "gt and lt compare integers",
      text: "replicas>2,age<10",
      canonical: "age<10,replicas>2",
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const selector = parseLabelSelector(c.text);
      assert.equal(selector.toString(), c.canonical);
      assert.equal(selector.isEmpty(), c.text === "");
    });
  }
});

Deno.test("label selector matching", async (t) => {
  const labels = { app: "web", tier: "frontend", replicas: "3", empty: "" };
  const cases: { name: string; selector: string; matches: boolean }[] = [
    { name: "the empty selector matches everything", selector: "", matches: true },
    { name: "equality matches the same value", selector: "app=web", matches: true },
    { name: "equality does not match another value", selector: "app=api", matches: false },
    { name: "equality does not match a missing label", selector: "zone=", matches: false },
    { name: "an empty value matches a label set to empty", selector: "empty=", matches: true },
    { name: "inequality matches another value", selector: "app!=api", matches: true },
    { name: "inequality matches a missing label", selector: "zone!=eu", matches: true },
    { name: "inequality does not match the same value", selector: "app!=web", matches: false },
    { name: "inequality to empty matches a missing label", selector: "zone!=", matches: true },
    { name: "notin () matches a missing label", selector: "zone notin ()", matches: true },
    {
      name: "notin () does not match a label set to empty",
      selector: "empty notin ()",
      matches: false,
    },
    { name: "in matches one of its values", selector: "tier in (backend,frontend)", matches: true },
    { name: "in does not match a missing label", selector: "zone in (eu,us)", matches: false },
    { name: "notin matches a missing label", selector: "zone notin (eu)", matches: true },
    {
      name: "notin does not match a listed value",
      selector: "tier notin (frontend)",
      matches: false,
    },
    { name: "exists matches a present label, even empty", selector: "empty", matches: true },
    { name: "exists does not match a missing label", selector: "zone", matches: false },
    { name: "does-not-exist matches a missing label", selector: "!zone", matches: true },
    { name: "does-not-exist does not match a present label", selector: "!app", matches: false },
    { name: "gt compares as integers", selector: "replicas>2", matches: true },
    { name: "lt compares as integers", selector: "replicas<3", matches: false },
    { name: "gt does not match a non-integer label", selector: "app>1", matches: false },
    { name: "all requirements must hold", selector: "app=web,tier=backend", matches: false },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      assert.equal(parseLabelSelector(c.selector).matches(labels), c.matches);
    });
  }

  await t.step("a label named like an Object prototype member is not assumed present", () => {
    assert.equal(parseLabelSelector("constructor").matches({}), false);
    assert.equal(parseLabelSelector("!toString").matches({}), true);
  });
});

Deno.test("label selector errors carry the API server's message", async (t) => {
  const cases: { name: string; text: string; message: string }[] = [
    {
      name: "a colon instead of = makes an invalid key",
      text: "app:web",
      message:
        `unable to parse requirement: <nil>: Invalid value: "app:web": name part ${KEY_RULE}`,
    },
    {
      name: "two words without an operator",
      text: "app web",
      message: "unable to parse requirement: found 'web', expected: in, notin, =, ==, !=, gt, lt",
    },
    {
      name: "a stray closing parenthesis after a key",
      text: "type=app,versionv1.0.1)",
      message: "unable to parse requirement: found ')', expected: in, notin, =, ==, !=, gt, lt",
    },
    {
      name: "a second value after an equality",
      text: "app=web api",
      message: "found 'api', expected: ',' or 'end of string'",
    },
    {
      name: "a trailing comma",
      text: "app=web,",
      message: "found '', expected: identifier after ','",
    },
    {
      name: "a leading comma",
      text: ",app",
      message: "found ',', expected: !, identifier, or 'end of string'",
    },
    {
      name: "in without parentheses",
      text: "tier in",
      message: "unable to parse requirement: found '' expected: '('",
    },
    {
      name: "an unclosed set",
      text: "tier in (web",
      message: "unable to parse requirement: found '', expected: ',' or ')'",
    },
    {
      name: "two values in a set without a comma",
      text: "tier in (web api)",
      message: "unable to parse requirement: found 'api', expected: ',' or ')'",
    },
    {
      name: "an operator where the value belongs",
      text: "app=(",
      message: "unable to parse requirement: found '(', expected: identifier",
    },
    {
      name: "! followed by nothing",
      text: "app,!",
      message: "unable to parse requirement: found '', expected: identifier",
    },
    {
      name: "!key cannot take a value",
      text: "!app=web",
      message: "found '=', expected: ',' or 'end of string'",
    },
    {
      name: "an invalid value",
      text: "app=-web",
      message: `unable to parse requirement: values[0][app]: Invalid value: "-web": ${VALUE_RULE}`,
    },
    {
      name: "a value longer than 63 bytes",
      text: `app=${"v".repeat(64)}`,
      message: `unable to parse requirement: values[0][app]: Invalid value: "${"v".repeat(64)}": ` +
        "must be no more than 63 bytes",
    },
    {
      name: "invalid set values are reported with their sorted index",
      text: "tier in (ok, -bad)",
      message: `unable to parse requirement: values[0][tier]: Invalid value: "-bad": ${VALUE_RULE}`,
    },
    {
      name: "a key with two slashes",
      text: "a/b/c=x",
      message:
        `unable to parse requirement: <nil>: Invalid value: "a/b/c": a valid label key ${KEY_RULE}` +
        " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
    },
    {
      name: "an empty key prefix",
      text: "/name",
      message:
        `unable to parse requirement: <nil>: Invalid value: "/name": prefix part must be non-empty`,
    },
    {
      name: "an upper-case key prefix",
      text: "Example.com/name",
      message:
        `unable to parse requirement: <nil>: Invalid value: "Example.com/name": prefix part ` +
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', " +
        "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for " +
        String
          .raw`validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
    },
    {
      name: "an empty key name lists both problems",
      text: "example.com/",
      message: `unable to parse requirement: <nil>: Invalid value: "example.com/": ` +
        `name part must be non-empty; name part ${KEY_RULE}`,
    },
    {
      name: "gt needs an integer",
      text: "replicas>many",
      message: `unable to parse requirement: values[0]: Invalid value: "many": ` +
        "for 'Gt', 'Lt' operators, the value must be an integer",
    },
    {
      name: "a negative bound is an integer but not a label value",
      text: "replicas>-1",
      message:
        `unable to parse requirement: values[0][replicas]: Invalid value: "-1": ${VALUE_RULE}`,
    },
    {
      name: "several problems in one requirement are listed together",
      text: "replicas<-x",
      message: `unable to parse requirement: [values[0]: Invalid value: "-x": ` +
        `for 'Gt', 'Lt' operators, the value must be an integer, ` +
        `values[0][replicas]: Invalid value: "-x": ${VALUE_RULE}]`,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => rejects(() => parseLabelSelector(c.text), c.message));
  }
});
