/**
 * Helpers for the kubeconfig tests whose oracle is kubectl: writing
 * kubeconfigs, running kubectl with exactly the files kevents reads, and
 * listing then watching events the way the pump does.
 */

import YAML from "yaml";
import type { FakeApiServer } from "../lib/fake_apiserver/mod.ts";
import { EVENTS, KubeClient } from "../lib/kube/client.ts";
import type { LoadedKubeConfig } from "../lib/kube/kubeconfig.ts";
import { coreEvent, type Json } from "./_fake_api.ts";
import { commandSucceeds } from "./_process.ts";

/** Whether kubectl runs here; the tests that need it are ignored otherwise, saying so. */
export const HAVE_KUBECTL = await commandSucceeds("kubectl", ["version", "--client"]);

/** What a kubectl run printed. */
export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Where kubectl finds its kubeconfig: a KUBECONFIG list or a --kubeconfig path. */
export type KubeconfigSource = { envKubeconfig: string } | { path: string };

/**
 * Runs kubectl to its end with only HOME (the temporary folder) and, when
 * given, KUBECONFIG set, in the working folder `cwd` (default `home`).
 */
export async function kubectl(
  args: string[],
  options: { source: KubeconfigSource; home: string; cwd?: string },
): Promise<KubectlResult> {
  const env: Record<string, string> = { HOME: options.home, PATH: Deno.env.get("PATH") ?? "" };
  const flags: string[] = [];
  if ("envKubeconfig" in options.source) env.KUBECONFIG = options.source.envKubeconfig;
  else flags.push("--kubeconfig", options.source.path);
  const out = await new Deno.Command("kubectl", {
    args: [...args, ...flags],
    env,
    clearEnv: true,
    cwd: options.cwd ?? options.home,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** `kubectl config view --minify --raw --flatten -o json`, parsed; fails the test if kubectl fails. */
export async function kubectlView(
  options: { source: KubeconfigSource; home: string; cwd?: string },
): Promise<unknown> {
  const out = await kubectl(["config", "view", "--minify", "--raw", "--flatten", "-o", "json"], {
    ...options,
  });
  if (out.code !== 0) throw new Error(`kubectl config view failed (${out.code}): ${out.stderr}`);
  return JSON.parse(out.stdout);
}

/** The parts of a kubeconfig, each list as a map from name to body. */
export interface KubeconfigParts {
  clusters?: Record<string, Json>;
  users?: Record<string, Json>;
  contexts?: Record<string, Json>;
  currentContext?: string;
}

/** A kubeconfig (YAML) from maps of named clusters, users and contexts. */
export function kubeconfigYaml(parts: KubeconfigParts): string {
  const list = (entries: Record<string, Json> | undefined, inner: string) =>
    Object.entries(entries ?? {}).map(([name, body]) => ({ name, [inner]: body }));
  const doc: Json = {
    apiVersion: "v1",
    kind: "Config",
    clusters: list(parts.clusters, "cluster"),
    users: list(parts.users, "user"),
    contexts: list(parts.contexts, "context"),
  };
  if (parts.currentContext !== undefined) doc["current-context"] = parts.currentContext;
  return YAML.stringify(doc);
}

/** `server`'s kubeconfig (admin, cluster and context "kevents-fake") changed by `edit`. */
export function fakeServerKubeconfig(
  server: FakeApiServer,
  edit: (doc: Json) => void = () => {},
): string {
  const doc = YAML.parse(server.kubeconfig());
  edit(doc);
  return YAML.stringify(doc);
}

/**
 * Lists events, then watches from the list and sees an event created once
 * the watch is open: what the pump does with the client. Returns the names
 * seen.
 */
export async function listAndWatchEvents(
  loaded: LoadedKubeConfig,
  server: FakeApiServer,
  name: string,
): Promise<{ listed: string[]; watched: string[] }> {
  const client = new KubeClient(loaded.config, { requestTimeoutMs: 5_000 });
  try {
    server.create("events", "default", coreEvent("default", `${name}-listed.1`));
    const page = await client.list<Json>(EVENTS);
    const listed = page.items.map((e) => e.metadata.name as string);
    const watched: string[] = [];
    for await (
      const batch of client.watchBatches<Json>(EVENTS, {
        resourceVersion: page.resourceVersion,
        // Bounds the test: the server ends the watch if the event never comes.
        timeoutSeconds: 20,
        onOpen: () => server.create("events", "default", coreEvent("default", `${name}-watched.1`)),
      })
    ) {
      watched.push(...batch.map((e) => e.object.metadata.name as string));
      if (watched.length > 0) break;
    }
    return { listed, watched };
  } finally {
    await client.close();
  }
}
