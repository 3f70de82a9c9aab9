/**
 * kevents' pump as `kevents run` runs it once it leads: one leadership term
 * of the collector (`runTerm`), so the token ConfigMap is read and stamped,
 * the pump and the checkpoint writer run side by side with the default
 * settings (a write every 500 events or every second), and metrics are
 * counted as in production. Events go to the null sink.
 *
 * Before it is ready it writes the token ConfigMap with the resourceVersion
 * to start from (its first connection). In throughput mode it is done after
 * `events` delivered events; in catch-up mode once it has acknowledged a
 * position at or past `caughtUpRv` (the relist is delivered) and has opened
 * the watch that follows the relist.
 *
 * @module
 */

import type { V1ConfigMap } from "@kubernetes/client-node";
import { TOKEN_KEY } from "../../lib/checkpoint/checkpointer.ts";
import { runTerm } from "../../lib/collector.ts";
import { parseConfig } from "../../lib/config/mod.ts";
import { NotFoundError } from "../../lib/kube/errors.ts";
import {
  CONFIGMAPS,
  KubeClient,
  type ListOptions,
  type ListPage,
  type RequestOptions,
  type ResourceRef,
  type WatchOptions,
} from "../../lib/kube/client.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import { setupLogging } from "../../lib/ops/log.ts";
import { Metrics } from "../../lib/ops/metrics.ts";
import { NullSink } from "../../lib/sinks/null.ts";
import type { WatchEvent } from "../../lib/kube/watch_stream.ts";
import type { Contestant, ContestantOptions, Figures, Progress } from "./types.ts";

/** A KubeClient that counts list pages, watches and ConfigMap writes. */
class CountingKubeClient extends KubeClient {
  pages = 0;
  watches = 0;
  configMapWrites = 0;
  /** When each ConfigMap write started (performance.now()). */
  writeTimes: number[] = [];
  onWatch: (() => void) | undefined;

  override list<T>(ref: ResourceRef, o: ListOptions = {}): Promise<ListPage<T>> {
    this.pages++;
    return super.list<T>(ref, o);
  }

  override watchBatches<T = Record<string, unknown>>(
    ref: ResourceRef,
    o: WatchOptions = {},
  ): AsyncGenerator<WatchEvent<T>[], void, undefined> {
    this.watches++;
    this.onWatch?.();
    return super.watchBatches<T>(ref, o);
  }

  override replace<T>(
    ref: ResourceRef,
    namespace: string,
    name: string,
    body: T,
    o: RequestOptions = {},
  ): Promise<T> {
    if (ref === CONFIGMAPS) {
      this.configMapWrites++;
      this.writeTimes.push(performance.now());
    }
    return super.replace<T>(ref, namespace, name, body, o);
  }
}

/** Sets the token ConfigMap to `rv`, creating it if needed. */
async function writeToken(
  client: KubeClient,
  namespace: string,
  name: string,
  rv: string,
): Promise<void> {
  let cm: V1ConfigMap | undefined;
  try {
    cm = await client.get<V1ConfigMap>(CONFIGMAPS, namespace, name);
  } catch (e) {
    if (!(e instanceof NotFoundError)) throw e;
  }
  const data = { [TOKEN_KEY]: rv };
  if (cm === undefined) {
    await client.create<V1ConfigMap>(CONFIGMAPS, namespace, { metadata: { name }, data });
  } else {
    await client.replace<V1ConfigMap>(CONFIGMAPS, namespace, name, { ...cm, data });
  }
}

/** Prepares the pump: loads the kubeconfig and writes the token. */
export async function preparePump(o: ContestantOptions): Promise<Contestant> {
  // Warnings (a failed checkpoint write, a restarted watch) go to stderr, as from `kevents run`.
  await setupLogging({ level: "warning", json: false });
  const config = parseConfig({
    env: { DD_COLLECT_KUBERNETES_EVENTS: "true", KEVENTS_SINKS: "null" },
  });
  const kc = new PooledKubeConfig();
  kc.loadFromFile(o.kubeconfig);
  const metrics = new Metrics();
  const client = new CountingKubeClient(kc, {
    requestTimeoutMs: config.timings.requestTimeoutMs,
    userAgent: "kevents-bench",
    metrics,
  });
  await writeToken(client, config.resourcesNamespace, config.tokenConfigMapName, o.fromRv);
  const setupWrites = client.configMapWrites;
  return {
    async run(progress: Progress): Promise<Figures> {
      const stop = new AbortController();
      let delivered = 0;
      let acknowledgedPast = false;
      const watchesBefore = client.watches;
      const startedAt = performance.now();
      const writesBefore = client.writeTimes.length;
      const check = () => {
        const done = o.caughtUpRv === undefined
          ? delivered >= o.events
          : acknowledgedPast && client.watches - watchesBefore >= 2;
        if (done && !stop.signal.aborted) {
          progress.reached();
          stop.abort(new Error("Benchmark goal reached"));
        }
      };
      client.onWatch = check;
      await runTerm({
        client,
        config,
        identity: "kevents-bench",
        sinks: [new NullSink()],
        metrics,
        observer: {
          delivered(records) {
            delivered += records.length;
            progress.events = delivered;
            check();
          },
          acknowledged(at) {
            if (
              o.caughtUpRv !== undefined && /^\d+$/.test(at.resourceVersion) &&
              Number(at.resourceVersion) >= o.caughtUpRv
            ) {
              acknowledgedPast = true;
              check();
            }
          },
        },
      }, { identity: "kevents-bench", transitions: 0, signal: stop.signal });
      // The longest time without a checkpoint write while streaming: how far
      // a crash would have sent the next leader back.
      const times = [startedAt, ...client.writeTimes.slice(writesBefore)];
      const until = progress.reachedAt ?? performance.now();
      let maxCheckpointGapMs = 0;
      for (let i = 0; i < times.length; i++) {
        const next = Math.min(times[i + 1] ?? until, until);
        maxCheckpointGapMs = Math.max(maxCheckpointGapMs, next - times[i]!);
      }
      return {
        maxCheckpointGapMs: Math.round(maxCheckpointGapMs),
        delivered,
        pages: client.pages,
        watches: client.watches - watchesBefore,
        checkpointWrites: client.configMapWrites - setupWrites,
      };
    },
    close: () => client.close(),
  };
}
