/**
 * `@kubernetes/client-node`'s `Watch`, with client-node's own KubeConfig
 * forced to HTTP/1.1 through an undici Agent (under Deno it would
 * negotiate HTTP/2), as kevents' pump uses. It parses every line and calls
 * back with each event; under Deno its done callback does not fire when the
 * stream ends, so it is simply stopped once it has counted enough. Its
 * first connection goes through client-node's typed CoreV1Api.
 *
 * @module
 */

import { CoreV1Api, Watch } from "@kubernetes/client-node";
import { Http1KubeConfig } from "../../tests/_client_node.ts";
import type { Contestant, ContestantOptions, Figures, Progress } from "./types.ts";

/** Prepares client-node's Watch. */
export async function prepareClientNode(o: ContestantOptions): Promise<Contestant> {
  const kc = new Http1KubeConfig();
  kc.loadFromFile(o.kubeconfig);
  await kc.makeApiClient(CoreV1Api).listEventForAllNamespaces({ limit: 1 });
  return {
    async run(progress: Progress): Promise<Figures> {
      const goal = Promise.withResolvers<void>();
      let events = 0;
      const controller = await new Watch(kc).watch(
        "/api/v1/events",
        { resourceVersion: o.fromRv, allowWatchBookmarks: true },
        () => {
          events++;
          progress.events = events;
          if (events >= o.events) {
            progress.reached();
            goal.resolve();
          }
        },
        (err) => {
          if (events < o.events) goal.reject(err ?? new Error("The watch ended early"));
        },
      );
      try {
        await goal.promise;
      } finally {
        controller.abort();
      }
      return { events };
    },
    close: () => kc.close(),
  };
}
