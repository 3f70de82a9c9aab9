/**
 * A seeded producer of realistic core/v1 Events for the fake API server, and a
 * rate-limited runner that feeds them to it.
 *
 * The generator simulates a small cluster: Deployments whose ReplicaSets
 * create Pods that are scheduled onto nodes, pull images, start, fail their
 * probes, crash-loop, roll out new versions and scale; and nodes that restart.
 * Several of these stories run interleaved, the way events from different
 * controllers interleave in a real cluster. Every event is written the way the
 * legacy event recorder writes it (count 1, `eventTime` null, `source` set);
 * the API server, not the generator, adds uid, resourceVersion and
 * creationTimestamp.
 *
 * Everything random comes from one seeded PRNG, and the only other input is
 * the injected clock: the same seed and the same clock values give the same
 * sequence of changes.
 *
 * @module
 */

/** A core/v1 Event object as the generator creates it. */
export type CoreEvent = Record<string, unknown> & {
  metadata: { name: string; namespace: string };
};

/** One change the generator asks the API server to make. */
export type GeneratedChange =
  /** Create this new Event. */
  | { op: "create"; event: CoreEvent }
  /** Bump `count` of an existing Event by 1 and set its `lastTimestamp` (a MODIFIED watch event). */
  | { op: "repeat"; namespace: string; name: string; lastTimestamp: string };

/** Options for {@linkcode EventGenerator}. */
export interface EventGeneratorOptions {
  /** Seed of the PRNG, used as an unsigned 32-bit integer; the same seed gives the same sequence. Default 1. */
  seed?: number;
  /** Namespaces the workloads live in. Default `["default", "kube-system", "payments", "web"]`. */
  namespaces?: string[];
  /** Number of nodes, named `node-1` to `node-N`. Default 3. */
  nodes?: number;
  /** Share of changes (0 to 1) that repeat a recent event instead of creating one. Default 0.2. */
  repeatRatio?: number;
  /** Clock read once per change for timestamps and event names. Default `() => new Date()`. */
  now?: () => Date;
}

/** Options for {@linkcode runEventGenerator}. */
export interface RunEventGeneratorOptions {
  /** Sustained rate of changes per second; must be positive and finite. */
  ratePerSecond: number;
  /** Changes that may be applied back to back after idling. Default `max(1, ratePerSecond / 10)`. */
  burst?: number;
  /** Stop after this many changes. Default: run until the signal aborts. */
  total?: number;
  /** Aborting stops the run after the change in flight; the run then resolves normally. */
  signal?: AbortSignal;
  /** Called after each applied change with the number applied so far. */
  onProgress?: (produced: number) => void;
}

const DEFAULT_NAMESPACES = ["default", "kube-system", "payments", "web"];
/** How many recent created events a repeat may pick from. */
const RECENT_EVENTS = 1_000;
/** How many stories may be in progress at once. */
const MAX_ACTIVE_STORIES = 4;
/** The alphabet Kubernetes uses for generated name suffixes (no vowels, no look-alikes). */
const NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";

// ---------------------------------------------------------------------------
// Seeded randomness

/** mulberry32: a small 32-bit PRNG, good enough for test data and fully reproducible. */
class Random {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  float(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** An integer in [min, max]. */
  between(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[this.int(items.length)];
    if (item === undefined) throw new RangeError("Cannot pick from an empty list");
    return item;
  }

  hex(length: number): string {
    let out = "";
    for (let i = 0; i < length; i++) out += this.int(16).toString(16);
    return out;
  }

  /** A random string from the alphabet Kubernetes uses for generated names. */
  suffix(length: number): string {
    let out = "";
    for (let i = 0; i < length; i++) out += NAME_ALPHABET[this.int(NAME_ALPHABET.length)];
    return out;
  }

  /** A string shaped like a version 4 UUID. */
  uuid(): string {
    const variant = (8 + this.int(4)).toString(16);
    return `${this.hex(8)}-${this.hex(4)}-4${this.hex(3)}-${variant}${this.hex(3)}-${this.hex(12)}`;
  }
}

// ---------------------------------------------------------------------------
// Simulated cluster state

interface NodeState {
  name: string;
  uid: string;
  /** Third octet of the pod CIDR this node hands out. */
  subnet: number;
  busy: boolean;
}

interface ReplicaSetState {
  name: string;
  uid: string;
  resourceVersion: number;
}

interface PodState {
  name: string;
  uid: string;
  node: NodeState | undefined;
  ip: string;
  replicaSet: ReplicaSetState;
  running: boolean;
  resourceVersion: number;
}

interface WorkloadTemplate {
  name: string;
  container: string;
  repository: string;
  /** Prepended to the version in image tags. Default "v". */
  tagPrefix?: string;
  version: readonly [number, number, number];
  port: number;
  liveness: string;
  readiness: string;
  /** Approximate compressed image size in bytes. */
  imageSize: number;
}

interface Workload {
  namespace: string;
  name: string;
  uid: string;
  resourceVersion: number;
  container: string;
  repository: string;
  tagPrefix: string;
  version: [number, number, number];
  port: number;
  liveness: string;
  readiness: string;
  imageSize: number;
  replicaSet: ReplicaSetState;
  pods: PodState[];
  busy: boolean;
}

const APP_WORKLOADS: readonly WorkloadTemplate[] = [
  {
    name: "storefront-web",
    container: "storefront",
    repository: "europe-west1-docker.pkg.dev/acme-shop-prod/containers/storefront-web",
    version: [2, 14, 1],
    port: 8080,
    liveness: "/healthz",
    readiness: "/readyz",
    imageSize: 48_211_764,
  },
  {
    name: "checkout-orchestrator",
    container: "app",
    repository: "ghcr.io/acme-corp/payments/checkout-service",
    version: [1, 42, 3],
    port: 8080,
    liveness: "/healthz",
    readiness: "/ready",
    imageSize: 31_457_280,
  },
  {
    name: "ledger-settlement-worker",
    container: "settlement-worker",
    repository: "ghcr.io/acme-corp/payments/ledger-settlement-worker",
    version: [0, 19, 7],
    port: 9090,
    liveness: "/livez",
    readiness: "/readyz",
    imageSize: 27_734_016,
  },
  {
    name: "notification-dispatcher",
    container: "dispatcher",
    repository: "europe-west1-docker.pkg.dev/acme-shop-prod/containers/notification-dispatcher",
    version: [3, 2, 0],
    port: 8080,
    liveness: "/healthz",
    readiness: "/healthz",
    imageSize: 62_914_560,
  },
  {
    name: "fraud-scoring-model-server",
    container: "model-server",
    repository: "europe-west1-docker.pkg.dev/acme-shop-prod/ml/fraud-scoring",
    version: [4, 0, 12],
    port: 8501,
    liveness: "/v1/models/fraud",
    readiness: "/v1/models/fraud",
    imageSize: 412_090_368,
  },
  {
    name: "inventory-reservation-api",
    container: "app",
    repository: "ghcr.io/acme-corp/inventory/reservation-api",
    version: [1, 8, 2],
    port: 8080,
    liveness: "/healthz",
    readiness: "/readyz",
    imageSize: 36_503_142,
  },
  {
    name: "marketing-site-nginx",
    container: "nginx",
    repository: "docker.io/library/nginx",
    tagPrefix: "",
    version: [1, 27, 3],
    port: 80,
    liveness: "/",
    readiness: "/",
    imageSize: 72_955_450,
  },
  {
    name: "oauth2-proxy",
    container: "oauth2-proxy",
    repository: "quay.io/oauth2-proxy/oauth2-proxy",
    version: [7, 7, 1],
    port: 4180,
    liveness: "/ping",
    readiness: "/ready",
    imageSize: 14_680_064,
  },
];

const SYSTEM_WORKLOADS: readonly WorkloadTemplate[] = [
  {
    name: "coredns",
    container: "coredns",
    repository: "registry.k8s.io/coredns/coredns",
    version: [1, 11, 3],
    port: 8080,
    liveness: "/health",
    readiness: "/ready",
    imageSize: 18_562_039,
  },
  {
    name: "metrics-server",
    container: "metrics-server",
    repository: "registry.k8s.io/metrics-server/metrics-server",
    version: [0, 7, 2],
    port: 10250,
    liveness: "/livez",
    readiness: "/readyz",
    imageSize: 19_494_617,
  },
  {
    name: "kube-state-metrics",
    container: "kube-state-metrics",
    repository: "registry.k8s.io/kube-state-metrics/kube-state-metrics",
    version: [2, 13, 0],
    port: 8080,
    liveness: "/livez",
    readiness: "/readyz",
    imageSize: 17_314_263,
  },
];

/** What one simulated step emits, before it becomes a core/v1 Event. */
interface EventSpec {
  involvedObject: Record<string, string>;
  /** Namespace of the Event; cluster-scoped objects get their events in "default". */
  namespace: string;
  type: "Normal" | "Warning";
  reason: string;
  message: string;
  component: string;
  /** Node the reporting component runs on, set by the kubelet. */
  host?: string;
}

interface RecentEvent {
  namespace: string;
  name: string;
  warning: boolean;
}

type Story = Generator<EventSpec, void, void>;

// ---------------------------------------------------------------------------
// The generator

/** Produces a reproducible stream of realistic event changes (same seed, same sequence, given the same clock values). */
export class EventGenerator {
  #random: Random;
  #now: () => Date;
  #repeatRatio: number;
  #nodes: NodeState[];
  #workloads: Workload[];
  #active: Story[] = [];
  /** Ring buffer of the last {@linkcode RECENT_EVENTS} created events. */
  #recent: RecentEvent[] = [];
  #recentNext = 0;
  #lastNanos = 0n;
  /** A cluster-wide counter standing in for etcd revisions of involved objects. */
  #revision: number;
  /** The clock value read for the change being produced. */
  #date = new Date(0);

  constructor(options: EventGeneratorOptions = {}) {
    const seed = options.seed ?? 1;
    const namespaces = options.namespaces ?? DEFAULT_NAMESPACES;
    const nodes = options.nodes ?? 3;
    const repeatRatio = options.repeatRatio ?? 0.2;
    if (!Number.isFinite(seed)) {
      throw new RangeError(
        `Cannot create event generator: seed must be a finite number, got ${seed}`,
      );
    }
    if (namespaces.length === 0) {
      throw new RangeError("Cannot create event generator: namespaces must not be empty");
    }
    if (!Number.isInteger(nodes) || nodes < 1) {
      throw new RangeError(
        `Cannot create event generator: nodes must be a positive integer, got ${nodes}`,
      );
    }
    if (!(repeatRatio >= 0 && repeatRatio <= 1)) {
      throw new RangeError(
        `Cannot create event generator: repeatRatio must be between 0 and 1, got ${repeatRatio}`,
      );
    }
    this.#random = new Random(seed);
    this.#now = options.now ?? (() => new Date());
    this.#repeatRatio = repeatRatio;
    this.#revision = this.#random.between(1_000_000, 9_000_000);
    this.#nodes = Array.from({ length: nodes }, (_, i) => ({
      name: `node-${i + 1}`,
      uid: this.#random.uuid(),
      subnet: i + 1,
      busy: false,
    }));
    this.#workloads = namespaces.flatMap((namespace) => this.#seedWorkloads(namespace));
  }

  /** Returns the next change: a new event, or a repeat of a recent one. */
  next(): GeneratedChange {
    this.#date = this.#now();
    const timestamp = formatTimestamp(this.#date);
    if (this.#recent.length > 0 && this.#random.chance(this.#repeatRatio)) {
      const { namespace, name } = this.#pickRepeat();
      return { op: "repeat", namespace, name, lastTimestamp: timestamp };
    }
    const spec = this.#nextSpec();
    const name = `${spec.involvedObject.name}.${this.#nextNanos().toString(16).padStart(16, "0")}`;
    const event: CoreEvent = {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name, namespace: spec.namespace },
      involvedObject: spec.involvedObject,
      reason: spec.reason,
      message: spec.message,
      source: spec.host === undefined
        ? { component: spec.component }
        : { component: spec.component, host: spec.host },
      firstTimestamp: timestamp,
      lastTimestamp: timestamp,
      count: 1,
      type: spec.type,
      eventTime: null,
      reportingComponent: spec.component,
      reportingInstance: spec.host ?? "",
    };
    this.#remember({ namespace: spec.namespace, name, warning: spec.type === "Warning" });
    return { op: "create", event };
  }

  // -- bookkeeping ----------------------------------------------------------

  #remember(entry: RecentEvent): void {
    if (this.#recent.length < RECENT_EVENTS) {
      this.#recent.push(entry);
    } else {
      this.#recent[this.#recentNext] = entry;
      this.#recentNext = (this.#recentNext + 1) % RECENT_EVENTS;
    }
  }

  /** Prefers warnings: BackOff and probe failures are what keeps repeating in real clusters. */
  #pickRepeat(): RecentEvent {
    let candidate = this.#random.pick(this.#recent);
    for (let tries = 0; tries < 4 && !candidate.warning; tries++) {
      candidate = this.#random.pick(this.#recent);
    }
    return candidate;
  }

  /**
   * Event names end in the hex of a nanosecond timestamp, as the event
   * recorder makes them. Strictly increasing, so names never collide even when
   * the clock stands still.
   */
  #nextNanos(): bigint {
    const fromClock = BigInt(Math.floor(this.#date.getTime())) * 1_000_000n +
      BigInt(this.#random.int(1_000_000));
    const next = fromClock > this.#lastNanos
      ? fromClock
      : this.#lastNanos + BigInt(1 + this.#random.int(50_000));
    this.#lastNanos = next;
    return next;
  }

  #nextRevision(): number {
    this.#revision += this.#random.between(1, 40);
    return this.#revision;
  }

  #nextSpec(): EventSpec {
    // Every story yields at least once, so this ends; the bound only guards against a bug.
    for (let attempt = 0; attempt < 1_000; attempt++) {
      if (
        this.#active.length === 0 ||
        (this.#active.length < MAX_ACTIVE_STORIES && this.#random.chance(0.25))
      ) {
        this.#active.push(this.#startStory());
      }
      const index = this.#random.int(this.#active.length);
      const step = this.#active[index]!.next();
      if (!step.done) return step.value;
      this.#active.splice(index, 1);
    }
    throw new Error("Cannot generate event: no story produced one");
  }

  // -- cluster state --------------------------------------------------------

  #seedWorkloads(namespace: string): Workload[] {
    // kube-system runs the add-ons; other namespaces two or three application workloads.
    const chosen: WorkloadTemplate[] = [];
    if (namespace === "kube-system") {
      chosen.push(...SYSTEM_WORKLOADS);
    } else {
      const count = this.#random.between(2, 3);
      while (chosen.length < count) {
        const template = this.#random.pick(APP_WORKLOADS);
        if (!chosen.includes(template)) chosen.push(template);
      }
    }
    return chosen.map((template) => {
      const workload: Workload = {
        namespace,
        name: template.name,
        uid: this.#random.uuid(),
        resourceVersion: this.#nextRevision(),
        container: template.container,
        repository: template.repository,
        tagPrefix: template.tagPrefix ?? "v",
        version: [...template.version],
        port: template.port,
        liveness: template.liveness,
        readiness: template.readiness,
        imageSize: template.imageSize,
        replicaSet: this.#newReplicaSet(template.name),
        pods: [],
        busy: false,
      };
      const replicas = this.#random.between(1, 3);
      for (let i = 0; i < replicas; i++) {
        const pod = this.#newPod(workload);
        pod.node = this.#random.pick(this.#nodes);
        pod.ip = this.#podIp(pod.node);
        pod.running = true;
        workload.pods.push(pod);
      }
      return workload;
    });
  }

  #newReplicaSet(deployment: string): ReplicaSetState {
    // A pod-template-hash encodes a decimal uint32, so it is usually 10 characters, else 9.
    return {
      name: `${deployment}-${this.#random.suffix(this.#random.chance(0.77) ? 10 : 9)}`,
      uid: this.#random.uuid(),
      resourceVersion: this.#nextRevision(),
    };
  }

  #newPod(workload: Workload): PodState {
    return {
      name: `${workload.replicaSet.name}-${this.#random.suffix(5)}`,
      uid: this.#random.uuid(),
      node: undefined,
      ip: "",
      replicaSet: workload.replicaSet,
      running: false,
      resourceVersion: this.#nextRevision(),
    };
  }

  #podIp(node: NodeState): string {
    return `10.244.${node.subnet}.${this.#random.between(2, 254)}`;
  }

  #image(workload: Workload): string {
    const [major, minor, patch] = workload.version;
    return `${workload.repository}:${workload.tagPrefix}${major}.${minor}.${patch}`;
  }

  #claimWorkload(test: (w: Workload) => boolean = () => true): Workload | undefined {
    const free = this.#workloads.filter((w) => !w.busy && test(w));
    if (free.length === 0) return undefined;
    const workload = this.#random.pick(free);
    workload.busy = true;
    return workload;
  }

  // -- object references ------------------------------------------------------

  #podRef(workload: Workload, pod: PodState, container?: string): Record<string, string> {
    const ref: Record<string, string> = {
      kind: "Pod",
      namespace: workload.namespace,
      name: pod.name,
      uid: pod.uid,
      apiVersion: "v1",
      resourceVersion: String(pod.resourceVersion),
    };
    if (container !== undefined) ref.fieldPath = `spec.containers{${container}}`;
    return ref;
  }

  #deploymentRef(workload: Workload): Record<string, string> {
    return {
      kind: "Deployment",
      namespace: workload.namespace,
      name: workload.name,
      uid: workload.uid,
      apiVersion: "apps/v1",
      resourceVersion: String(workload.resourceVersion),
    };
  }

  #replicaSetRef(workload: Workload, replicaSet: ReplicaSetState): Record<string, string> {
    return {
      kind: "ReplicaSet",
      namespace: workload.namespace,
      name: replicaSet.name,
      uid: replicaSet.uid,
      apiVersion: "apps/v1",
      resourceVersion: String(replicaSet.resourceVersion),
    };
  }

  /**
   * Nodes are cluster-scoped, so the reference has no namespace. The kubelet
   * does not look its Node up and puts the node name where the UID goes; the
   * node controller references the real object.
   */
  #nodeRef(node: NodeState, byKubelet: boolean): Record<string, string> {
    return {
      kind: "Node",
      name: node.name,
      uid: byKubelet ? node.name : node.uid,
      apiVersion: "v1",
    };
  }

  // -- event helpers ----------------------------------------------------------

  #kubelet(
    workload: Workload,
    pod: PodState,
    type: EventSpec["type"],
    reason: string,
    message: string,
  ): EventSpec {
    return {
      involvedObject: this.#podRef(workload, pod, workload.container),
      namespace: workload.namespace,
      type,
      reason,
      message,
      component: "kubelet",
      host: pod.node?.name ?? "",
    };
  }

  #scaled(workload: Workload, replicaSet: ReplicaSetState, from: number, to: number): EventSpec {
    workload.resourceVersion = this.#nextRevision();
    const direction = to > from ? "up" : "down";
    return {
      involvedObject: this.#deploymentRef(workload),
      namespace: workload.namespace,
      type: "Normal",
      reason: "ScalingReplicaSet",
      message: `Scaled ${direction} replica set ${replicaSet.name} from ${from} to ${to}`,
      component: "deployment-controller",
    };
  }

  #replicaSetEvent(workload: Workload, pod: PodState, created: boolean): EventSpec {
    pod.replicaSet.resourceVersion = this.#nextRevision();
    return {
      involvedObject: this.#replicaSetRef(workload, pod.replicaSet),
      namespace: workload.namespace,
      type: "Normal",
      reason: created ? "SuccessfulCreate" : "SuccessfulDelete",
      message: `${created ? "Created" : "Deleted"} pod: ${pod.name}`,
      component: "replicaset-controller",
    };
  }

  #failedScheduling(workload: Workload, pod: PodState): EventSpec {
    const total = this.#nodes.length;
    const tainted = total > 1 ? this.#random.between(0, 1) : 0;
    const short = total - tainted;
    const resource = this.#random.pick(["cpu", "memory"]);
    const reasons = [
      ...(tainted > 0
        ? [`${tainted} node(s) had untolerated taint {node.kubernetes.io/unreachable: }`]
        : []),
      `${short} Insufficient ${resource}`,
    ];
    const preemption = [
      ...(tainted > 0 ? [`${tainted} Preemption is not helpful for scheduling`] : []),
      `${short} No preemption victims found for incoming pod`,
    ];
    return {
      involvedObject: this.#podRef(workload, pod),
      namespace: workload.namespace,
      type: "Warning",
      reason: "FailedScheduling",
      message: `0/${total} nodes are available: ${reasons.join(", ")}. ` +
        `preemption: 0/${total} nodes are available: ${preemption.join(", ")}.`,
      component: "default-scheduler",
    };
  }

  #scheduled(workload: Workload, pod: PodState): EventSpec {
    const node = this.#random.pick(this.#nodes);
    pod.node = node;
    pod.ip = this.#podIp(node);
    pod.resourceVersion = this.#nextRevision();
    return {
      involvedObject: this.#podRef(workload, pod),
      namespace: workload.namespace,
      type: "Normal",
      reason: "Scheduled",
      message: `Successfully assigned ${workload.namespace}/${pod.name} to ${node.name}`,
      component: "default-scheduler",
    };
  }

  /** The kubelet's events from pulling the image to a started container. */
  *#startContainer(workload: Workload, pod: PodState, pull: boolean): Story {
    const image = this.#image(workload);
    if (pull) {
      yield this.#kubelet(workload, pod, "Normal", "Pulling", `Pulling image "${image}"`);
      const pulling = this.#random.between(400_000_000, 9_000_000_000);
      const waiting = pulling + (this.#random.chance(0.3) ? this.#random.int(2_000_000_000) : 0);
      const size = workload.imageSize + this.#random.between(-400_000, 400_000);
      yield this.#kubelet(
        workload,
        pod,
        "Normal",
        "Pulled",
        `Successfully pulled image "${image}" in ${goDuration(pulling)} ` +
          `(${goDuration(waiting)} including waiting). Image size: ${size} bytes.`,
      );
    } else {
      yield this.#kubelet(
        workload,
        pod,
        "Normal",
        "Pulled",
        `Container image "${image}" already present on machine`,
      );
    }
    yield this.#kubelet(
      workload,
      pod,
      "Normal",
      "Created",
      `Created container: ${workload.container}`,
    );
    pod.running = true;
    pod.resourceVersion = this.#nextRevision();
    yield this.#kubelet(
      workload,
      pod,
      "Normal",
      "Started",
      `Started container ${workload.container}`,
    );
  }

  /** A new pod from the ReplicaSet controller to a running container. */
  *#createPod(workload: Workload, pod: PodState): Story {
    yield this.#replicaSetEvent(workload, pod, true);
    if (this.#random.chance(0.15)) yield this.#failedScheduling(workload, pod);
    yield this.#scheduled(workload, pod);
    yield* this.#startContainer(workload, pod, this.#random.chance(0.6));
  }

  *#deletePod(workload: Workload, pod: PodState): Story {
    workload.pods = workload.pods.filter((p) => p !== pod);
    yield this.#replicaSetEvent(workload, pod, false);
    if (pod.running) {
      pod.resourceVersion = this.#nextRevision();
      yield this.#kubelet(
        workload,
        pod,
        "Normal",
        "Killing",
        `Stopping container ${workload.container}`,
      );
    }
  }

  // -- stories ----------------------------------------------------------------

  #startStory(): Story {
    const roll = this.#random.float();
    if (roll < 0.02) {
      const free = this.#nodes.filter((n) => !n.busy);
      if (free.length > 0) return this.#nodeRestart(this.#random.pick(free));
    }
    if (roll < 0.12) return this.#withWorkload((w) => this.#scaleUp(w), (w) => w.pods.length < 5);
    if (roll < 0.2) return this.#withWorkload((w) => this.#rollout(w));
    if (roll < 0.24) return this.#withWorkload((w) => this.#failedRollout(w));
    if (roll < 0.32) return this.#withWorkload((w) => this.#scaleDown(w), (w) => w.pods.length > 1);
    if (roll < 0.6) {
      return this.#withWorkload((w) => this.#crashLoop(w), (w) => w.pods.some((p) => p.running));
    }
    return this.#probeFailure();
  }

  /** Runs a story on a workload no other story is changing. */
  *#withWorkload(story: (workload: Workload) => Story, test?: (w: Workload) => boolean): Story {
    const workload = this.#claimWorkload(test);
    if (workload === undefined) {
      // Everything fitting is busy: a readiness failure needs no claim and always has a pod.
      yield* this.#probeFailure();
      return;
    }
    try {
      yield* story(workload);
    } finally {
      workload.busy = false;
    }
  }

  *#scaleUp(workload: Workload): Story {
    const from = workload.pods.length;
    const to = from + this.#random.between(1, 2);
    yield this.#scaled(workload, workload.replicaSet, from, to);
    for (let i = from; i < to; i++) {
      const pod = this.#newPod(workload);
      workload.pods.push(pod);
      yield* this.#createPod(workload, pod);
    }
  }

  *#scaleDown(workload: Workload): Story {
    const from = workload.pods.length;
    yield this.#scaled(workload, workload.replicaSet, from, from - 1);
    yield* this.#deletePod(workload, this.#random.pick(workload.pods));
  }

  /** A new version replaces the pods one at a time (maxSurge 1, maxUnavailable 0). */
  *#rollout(workload: Workload): Story {
    const oldReplicaSet = workload.replicaSet;
    const oldPods = [...workload.pods];
    workload.version[2] += 1;
    workload.replicaSet = this.#newReplicaSet(workload.name);
    const replicas = oldPods.length;
    for (const [i, oldPod] of oldPods.entries()) {
      yield this.#scaled(workload, workload.replicaSet, i, i + 1);
      const pod = this.#newPod(workload);
      workload.pods.push(pod);
      yield* this.#createPod(workload, pod);
      yield this.#scaled(workload, oldReplicaSet, replicas - i, replicas - i - 1);
      yield* this.#deletePod(workload, oldPod);
    }
  }

  /**
   * A rollout to an image tag that does not exist, rolled back by hand. Only
   * the first pull attempt creates events: the kubelet's later attempts are
   * identical, so the recorder turns them into repeats.
   */
  *#failedRollout(workload: Workload): Story {
    const [major, minor] = workload.version;
    const badImage = `${workload.repository}:${workload.tagPrefix}${major}.${minor + 1}.0`;
    const good = workload.replicaSet;
    const bad = this.#newReplicaSet(workload.name);
    workload.replicaSet = bad;
    yield this.#scaled(workload, bad, 0, 1);
    const pod = this.#newPod(workload);
    workload.pods.push(pod);
    yield this.#replicaSetEvent(workload, pod, true);
    yield this.#scheduled(workload, pod);
    yield this.#kubelet(workload, pod, "Normal", "Pulling", `Pulling image "${badImage}"`);
    yield this.#kubelet(
      workload,
      pod,
      "Warning",
      "Failed",
      `Failed to pull image "${badImage}": rpc error: code = NotFound desc = failed to pull ` +
        `and unpack image "${badImage}": failed to resolve reference "${badImage}": ` +
        `${badImage}: not found`,
    );
    yield this.#kubelet(workload, pod, "Warning", "Failed", "Error: ErrImagePull");
    yield this.#kubelet(workload, pod, "Normal", "BackOff", `Back-off pulling image "${badImage}"`);
    yield this.#kubelet(workload, pod, "Warning", "Failed", "Error: ImagePullBackOff");
    workload.replicaSet = good;
    yield this.#scaled(workload, bad, 1, 0);
    yield* this.#deletePod(workload, pod);
  }

  /**
   * A container killed for failing its liveness probe, or exiting by itself,
   * restarted, and then held in back-off. Later restarts repeat these events.
   */
  *#crashLoop(workload: Workload): Story {
    const pod = this.#random.pick(workload.pods.filter((p) => p.running));
    const probe = `http://${pod.ip}:${workload.port}${workload.liveness}`;
    if (this.#random.chance(0.6)) {
      yield this.#kubelet(
        workload,
        pod,
        "Warning",
        "Unhealthy",
        this.#random.chance(0.5)
          ? "Liveness probe failed: HTTP probe failed with statuscode: 500"
          : `Liveness probe failed: Get "${probe}": context deadline exceeded ` +
            "(Client.Timeout exceeded while awaiting headers)",
      );
      yield this.#kubelet(
        workload,
        pod,
        "Normal",
        "Killing",
        `Container ${workload.container} failed liveness probe, will be restarted`,
      );
    }
    yield* this.#startContainer(workload, pod, false);
    yield this.#kubelet(
      workload,
      pod,
      "Warning",
      "BackOff",
      `Back-off restarting failed container ${workload.container} in pod ` +
        `${pod.name}_${workload.namespace}(${pod.uid})`,
    );
  }

  /** A readiness probe failure; needs no claim because it changes nothing. */
  *#probeFailure(): Story {
    const workload = this.#random.pick(
      this.#workloads.filter((w) => w.pods.some((p) => p.running)),
    );
    const pod = this.#random.pick(workload.pods.filter((p) => p.running));
    const url = `http://${pod.ip}:${workload.port}${workload.readiness}`;
    const failure = this.#random.pick([
      `Get "${url}": dial tcp ${pod.ip}:${workload.port}: connect: connection refused`,
      `Get "${url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`,
      "HTTP probe failed with statuscode: 503",
    ]);
    yield this.#kubelet(
      workload,
      pod,
      "Warning",
      "Unhealthy",
      `Readiness probe failed: ${failure}`,
    );
  }

  /** A node goes NotReady, its kubelet restarts, and it comes back. */
  *#nodeRestart(node: NodeState): Story {
    node.busy = true;
    try {
      yield* this.#nodeEvents(node);
    } finally {
      node.busy = false;
    }
  }

  *#nodeEvents(node: NodeState): Story {
    const status = (condition: string, byKubelet: boolean): EventSpec => ({
      involvedObject: this.#nodeRef(node, byKubelet),
      namespace: "default",
      type: "Normal",
      reason: condition,
      message: `Node ${node.name} status is now: ${condition}`,
      component: byKubelet ? "kubelet" : "node-controller",
      ...(byKubelet ? { host: node.name } : {}),
    });
    const kubeletEvent = (
      type: EventSpec["type"],
      reason: string,
      message: string,
    ): EventSpec => ({
      involvedObject: this.#nodeRef(node, true),
      namespace: "default",
      type,
      reason,
      message,
      component: "kubelet",
      host: node.name,
    });

    yield status("NodeNotReady", false);
    for (const workload of this.#workloads) {
      for (const pod of workload.pods) {
        if (pod.node !== node || !pod.running) continue;
        yield {
          involvedObject: this.#podRef(workload, pod),
          namespace: workload.namespace,
          type: "Warning",
          reason: "NodeNotReady",
          message: "Node is not ready",
          component: "node-controller",
        };
      }
    }
    if (this.#random.chance(0.5)) {
      yield kubeletEvent(
        "Warning",
        "SystemOOM",
        `System OOM encountered, victim process: java, pid: ${this.#random.between(2_000, 90_000)}`,
      );
    }
    yield kubeletEvent("Normal", "Starting", "Starting kubelet.");
    yield kubeletEvent(
      "Warning",
      "InvalidDiskCapacity",
      "invalid capacity 0 on image filesystem",
    );
    yield status("NodeHasSufficientMemory", true);
    yield status("NodeHasNoDiskPressure", true);
    yield status("NodeHasSufficientPID", true);
    yield kubeletEvent(
      "Normal",
      "NodeAllocatableEnforced",
      "Updated Node Allocatable limit across pods",
    );
    yield status("NodeReady", true);
    if (this.#random.chance(0.5)) {
      yield {
        involvedObject: this.#nodeRef(node, false),
        namespace: "default",
        type: "Normal",
        reason: "RegisteredNode",
        message: `Node ${node.name} event: Registered Node ${node.name} in Controller`,
        component: "node-controller",
      };
    }
  }
}

/** RFC 3339 with second precision, the way metav1.Time serialises. */
function formatTimestamp(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/** Formats nanoseconds the way Go prints a time.Duration of under a minute ("1.5s", "812.3ms"). */
function goDuration(nanos: number): string {
  const [unit, scale, digits] = nanos >= 1e9 ? ["s", 1e9, 9] : ["ms", 1e6, 6];
  const whole = Math.floor(nanos / scale);
  const fraction = String(nanos % scale).padStart(digits, "0").replace(/0+$/, "");
  return fraction === "" ? `${whole}${unit}` : `${whole}.${fraction}${unit}`;
}

// ---------------------------------------------------------------------------
// The runner

/** Without a wait in between, yield to the event loop after this many changes so timers and I/O still run. */
const YIELD_EVERY = 1_000;

/** Calls apply() for each change at the given rate (token bucket with burst), awaiting it, until total is reached or the signal aborts; resolves with the number applied. */
export async function runEventGenerator(
  generator: EventGenerator,
  apply: (change: GeneratedChange) => void | Promise<void>,
  options: RunEventGeneratorOptions,
): Promise<number> {
  const { ratePerSecond, total, signal, onProgress } = options;
  if (!(Number.isFinite(ratePerSecond) && ratePerSecond > 0)) {
    throw new RangeError(
      `Cannot run event generator: ratePerSecond must be a positive finite number, got ${ratePerSecond}`,
    );
  }
  const burst = options.burst ?? Math.max(1, ratePerSecond / 10);
  if (!(Number.isFinite(burst) && burst >= 1)) {
    throw new RangeError(`Cannot run event generator: burst must be at least 1, got ${burst}`);
  }
  if (total !== undefined && !(Number.isInteger(total) && total >= 0)) {
    throw new RangeError(
      `Cannot run event generator: total must be a non-negative integer, got ${total}`,
    );
  }

  let applied = 0;
  // The bucket starts full, so the first burst goes out at once. Tokens are
  // refilled from elapsed time rather than counted per timer, so late timers
  // and slow applies do not make the rate drift.
  let tokens = burst;
  let refilledAt = performance.now();
  let sinceYield = 0;
  while ((total === undefined || applied < total) && !signal?.aborted) {
    const now = performance.now();
    tokens = Math.min(burst, tokens + ((now - refilledAt) * ratePerSecond) / 1000);
    refilledAt = now;
    if (tokens < 1 || sinceYield >= YIELD_EVERY) {
      const waitMs = tokens < 1 ? Math.ceil(((1 - tokens) * 1000) / ratePerSecond) : 0;
      if (!(await wait(waitMs, signal))) break;
      sinceYield = 0;
      continue;
    }
    tokens -= 1;
    sinceYield++;
    await apply(generator.next());
    applied++;
    onProgress?.(applied);
  }
  return applied;
}

/** Resolves true after `ms`, or false as soon as the signal aborts; never leaves the timer behind. */
function wait(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve(false);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
