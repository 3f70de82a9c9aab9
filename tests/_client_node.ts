/**
 * @kubernetes/client-node as an independent client of the fake API server,
 * forced to HTTP/1.1 through an undici Agent (over HTTP/2, client-node can
 * crash Deno on a GOAWAY). kevents itself no longer runs client-node: its
 * `KubeConfig` costs ~55 MiB of memory.
 *
 * @module
 */

import { KubeConfig, type RequestContext } from "@kubernetes/client-node";
import { Agent } from "undici";

/** A client-node KubeConfig whose requests go over one HTTP/1.1 pool. */
export class Http1KubeConfig extends KubeConfig {
  #agent: Agent | undefined;

  #dispatcher(): Agent {
    if (this.#agent !== undefined) return this.#agent;
    const cluster = this.getCurrentCluster();
    const read = (file?: string, data?: string) =>
      file ? Deno.readTextFileSync(file) : data ? atob(data) : undefined;
    const ca = read(cluster?.caFile, cluster?.caData);
    const connect: Record<string, unknown> = ca === undefined ? {} : { ca };
    if (cluster?.skipTLSVerify === true) connect.rejectUnauthorized = false;
    this.#agent = new Agent({ allowH2: false, connect });
    return this.#agent;
  }

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    context.setDispatcher(this.#dispatcher());
  }

  /** Closes the pool. */
  async close(): Promise<void> {
    const agent = this.#agent;
    this.#agent = undefined;
    await agent?.destroy();
  }
}

/** A client-node KubeConfig loaded from a kubeconfig's text. */
export function clientNodeConfig(kubeconfig: string): Http1KubeConfig {
  const kc = new Http1KubeConfig();
  kc.loadFromString(kubeconfig);
  return kc;
}
