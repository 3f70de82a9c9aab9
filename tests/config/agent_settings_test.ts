/**
 * Specification of the Datadog Agent settings a user moving from the Agent
 * brings along: `cluster_agent.token_name` (nested as the Agent's
 * datadog.yaml writes it, or dotted), `cluster_name`,
 * `kubernetes_kubelet_nodename`, and the check instance's tags
 * (`kevents_datadog_tags`). Pure: every input is a literal.
 */

import assert from "node:assert/strict";
import { ConfigError, type ConfigInput, parseConfig } from "../../lib/config/mod.ts";

const PATH = "/etc/datadog-agent/datadog.yaml";

function input(env: Record<string, string>, fileText?: string): ConfigInput {
  return { env, ...(fileText === undefined ? {} : { file: { path: PATH, text: fileText } }) };
}

function refusal(i: ConfigInput): ConfigError {
  try {
    parseConfig(i);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  assert.fail("parseConfig accepted it");
}

Deno.test("cluster_agent.token_name names the token ConfigMap, as in the Agent", async (t) => {
  await t.step("nested under cluster_agent: in datadog.yaml", () => {
    const c = parseConfig(input({}, "cluster_agent:\n  token_name: agenttoken\n  enabled: true\n"));
    assert.equal(c.tokenConfigMapName, "agenttoken");
    assert.deepEqual(c.warnings, []);
  });
  await t.step("written dotted in datadog.yaml", () => {
    const c = parseConfig(input({}, "cluster_agent.token_name: agenttoken\n"));
    assert.equal(c.tokenConfigMapName, "agenttoken");
  });
  await t.step("DD_CLUSTER_AGENT_TOKEN_NAME wins over the file", () => {
    const c = parseConfig(
      input({ DD_CLUSTER_AGENT_TOKEN_NAME: "fromenv" }, "cluster_agent:\n  token_name: fromfile\n"),
    );
    assert.equal(c.tokenConfigMapName, "fromenv");
  });
  await t.step(
    "kubernetes_event_token_configmap alone still works; datadogtoken by default",
    () => {
      assert.equal(parseConfig(input({})).tokenConfigMapName, "datadogtoken");
      assert.equal(
        parseConfig(input({ DD_KUBERNETES_EVENT_TOKEN_CONFIGMAP: "own" })).tokenConfigMapName,
        "own",
      );
    },
  );
  await t.step("both set to the same name is fine", () => {
    const c = parseConfig(
      input({ DD_KUBERNETES_EVENT_TOKEN_CONFIGMAP: "same", DD_CLUSTER_AGENT_TOKEN_NAME: "same" }),
    );
    assert.equal(c.tokenConfigMapName, "same");
  });
  await t.step("both set to different names is refused, naming both", () => {
    const e = refusal(
      input({ DD_KUBERNETES_EVENT_TOKEN_CONFIGMAP: "own", DD_CLUSTER_AGENT_TOKEN_NAME: "agent" }),
    );
    assert.equal(e.key, "kubernetes_event_token_configmap");
    assert.equal(e.source, "env DD_KUBERNETES_EVENT_TOKEN_CONFIGMAP");
    assert.equal(e.value, "own");
    assert.match(
      e.rule,
      /cluster_agent\.token_name \(agent, env DD_CLUSTER_AGENT_TOKEN_NAME\)/,
    );
  });
  await t.step("a name that is not a DNS subdomain is refused with the nested key's line", () => {
    const e = refusal(input({}, "cluster_agent:\n  token_name: Bad_Name\n"));
    assert.equal(e.key, "cluster_agent.token_name");
    assert.equal(e.source, `${PATH} line 2`);
    assert.equal(e.value, "Bad_Name");
  });
  await t.step("the Agent's ConfigMap lock may not be the token it names", () => {
    const e = refusal(input({
      DD_LEADER_ELECTION_DEFAULT_RESOURCE: "configmap",
      DD_CLUSTER_AGENT_TOKEN_NAME: "datadog-leader-election",
    }));
    assert.equal(e.key, "leader_lease_name");
    assert.match(e.message, /DD_CLUSTER_AGENT_TOKEN_NAME/);
  });
  await t.step("other keys under cluster_agent: are the Agent's, ignored without a word", () => {
    const c = parseConfig(input({}, "cluster_agent:\n  url: https://dca:5005\n  auth_token: x\n"));
    assert.equal(c.tokenConfigMapName, "datadogtoken");
    assert.deepEqual(c.warnings, []);
  });
});

Deno.test("cluster_name is taken as the Agent takes it", async (t) => {
  await t.step("unset by default", () => {
    assert.equal(parseConfig(input({})).clusterName, undefined);
  });
  for (const name of ["prod", "prod-eu-1", "Prod_EU", "a.b-c", "x"]) {
    await t.step(`${JSON.stringify(name)} is accepted as given`, () => {
      assert.equal(parseConfig(input({ DD_CLUSTER_NAME: name })).clusterName, name);
    });
  }
  await t.step("from datadog.yaml", () => {
    assert.equal(parseConfig(input({}, "cluster_name: staging\n")).clusterName, "staging");
  });
  for (const name of ["1prod", "prod-", "pro d", "prod..eu", "-prod", ""]) {
    await t.step(`${JSON.stringify(name)} is refused with the rule`, () => {
      const e = refusal(input({ DD_CLUSTER_NAME: name }));
      assert.equal(e.key, "cluster_name");
      assert.equal(e.source, "env DD_CLUSTER_NAME");
      assert.match(e.rule, /cluster name as the Datadog Agent takes it/);
    });
  }
});

Deno.test("kubernetes_kubelet_nodename and kevents_datadog_tags", async (t) => {
  await t.step("the node name from DD_KUBERNETES_KUBELET_NODENAME", () => {
    assert.equal(
      parseConfig(input({ DD_KUBERNETES_KUBELET_NODENAME: "node-1.example" })).nodeName,
      "node-1.example",
    );
    assert.equal(parseConfig(input({})).nodeName, undefined);
  });
  await t.step("tags as a comma list or a YAML list, deduplicated", () => {
    assert.deepEqual(
      parseConfig(input({ KEVENTS_DATADOG_TAGS: "team:sre, env:prod,team:sre" })).datadog.tags,
      ["team:sre", "env:prod"],
    );
    assert.deepEqual(
      parseConfig(input({}, "kevents_datadog_tags:\n  - team:sre\n  - critical\n")).datadog.tags,
      ["team:sre", "critical"],
    );
  });
  await t.step("a tag with a space is refused", () => {
    const e = refusal(input({ KEVENTS_DATADOG_TAGS: "team:sre,bad tag" }));
    assert.equal(e.key, "kevents_datadog_tags");
    assert.match(e.rule, /no spaces or commas/);
  });
});

Deno.test("the Datadog intake's proxy is found where the Agent finds it", async (t) => {
  const dd = { KEVENTS_SINKS: "datadog", DD_API_KEY: "0123456789abcdef0123456789abcdef" };
  await t.step("none by default", () => {
    const c = parseConfig(input(dd));
    assert.equal(c.datadog.proxy, undefined);
    assert.deepEqual(c.datadog.noProxy, []);
  });
  await t.step("proxy.https and proxy.no_proxy nested in datadog.yaml", () => {
    const c = parseConfig(
      input(dd, "proxy:\n  https: http://proxy.corp:3128\n  no_proxy:\n    - api.datadoghq.com\n"),
    );
    assert.equal(c.datadog.proxy, "http://proxy.corp:3128/");
    assert.deepEqual(c.datadog.noProxy, ["api.datadoghq.com"]);
  });
  await t.step("HTTPS_PROXY and NO_PROXY win over the file", () => {
    const c = parseConfig(input(
      { ...dd, HTTPS_PROXY: "http://env-proxy:8080", NO_PROXY: "a.example,b.example:443" },
      "proxy:\n  https: http://proxy.corp:3128\n",
    ));
    assert.equal(c.datadog.proxy, "http://env-proxy:8080/");
    assert.deepEqual(c.datadog.noProxy, ["a.example", "b.example:443"]);
  });
  await t.step("DD_PROXY_HTTPS and DD_PROXY_NO_PROXY (spaces too) win over HTTPS_PROXY", () => {
    const c = parseConfig(input({
      ...dd,
      DD_PROXY_HTTPS: "https://dd-proxy:443",
      HTTPS_PROXY: "http://env-proxy:8080",
      DD_PROXY_NO_PROXY: "a.example b.example",
      no_proxy: "c.example",
    }));
    assert.equal(c.datadog.proxy, "https://dd-proxy/");
    assert.deepEqual(c.datadog.noProxy, ["a.example", "b.example"]);
  });
  await t.step("DD_PROXY_HTTPS with a SOCKS proxy is refused naming the variable", () => {
    const e = refusal(input({ ...dd, DD_PROXY_HTTPS: "socks5://proxy:1080" }));
    assert.equal(e.key, "proxy.https");
    assert.equal(e.source, "env DD_PROXY_HTTPS");
    assert.match(e.rule, /SOCKS proxy is not supported/);
  });
  await t.step(
    "HTTPS_PROXY set for other programs in a form kevents cannot use: a warning, no proxy",
    () => {
      const c = parseConfig(input({ ...dd, HTTPS_PROXY: "socks5://user:pw@proxy:1080" }));
      assert.equal(c.datadog.proxy, undefined);
      assert.equal(c.warnings.length, 1);
      assert.match(c.warnings[0]!, /^Ignoring HTTPS_PROXY for the datadog sink: .*SOCKS/);
      assert.doesNotMatch(c.warnings[0]!, /pw/);
    },
  );
  await t.step("HTTPS_PROXY without a scheme is an http:// proxy, as for Go programs", () => {
    const c = parseConfig(input({ ...dd, HTTPS_PROXY: "proxy.corp:3128" }));
    assert.equal(c.datadog.proxy, "http://proxy.corp:3128/");
  });
  await t.step(
    "NO_PROXY with CIDR ranges and domain suffixes, as pods often have it, is taken",
    () => {
      const c = parseConfig(input({ ...dd, NO_PROXY: "localhost,10.0.0.0/8,.svc,.cluster.local" }));
      assert.deepEqual(c.datadog.noProxy, ["localhost", "10.0.0.0/8", ".svc", ".cluster.local"]);
    },
  );
  await t.step("credentials in a refused proxy URL are not shown", () => {
    const e = refusal(input({ ...dd, DD_PROXY_HTTPS: "ftp://user:s3cret@proxy:21" }));
    assert.doesNotMatch(e.message, /s3cret/);
  });
  await t.step("without the datadog sink, HTTPS_PROXY is someone else's: ignored", () => {
    const c = parseConfig(input({ HTTPS_PROXY: "socks5://proxy:1080" }));
    assert.equal(c.datadog.proxy, undefined);
  });
});

Deno.test("collected_event_types as the Agent writes it: a YAML list of mappings", () => {
  const c = parseConfig(input(
    { KEVENTS_SINKS: "datadog", DD_API_KEY: "0123456789abcdef0123456789abcdef" },
    "unbundle_events: true\ncollected_event_types:\n  - kind: Pod\n    reasons:\n      - Failed\n" +
      "      - BackOff\n  - source: kubelet\n",
  ));
  assert.deepEqual(c.datadog.collectedEventTypes, [
    { kind: "Pod", reasons: ["Failed", "BackOff"] },
    { source: "kubelet", reasons: [] },
  ]);
});
