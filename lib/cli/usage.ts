/**
 * What kevents says about its command line: its version, the help text of
 * `kevents --help` and {@linkcode UsageError}, raised for a command line
 * that cannot be parsed.
 *
 * @module
 */

/** kevents' version, printed by `kevents version`. */
export const VERSION = "0.1.0";

/** Raised for a command line that cannot be parsed; main.ts exits with code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Usage text for `kevents --help`. */
export const USAGE = `kevents ${VERSION}: Kubernetes event collector

Usage:
  kevents [run] [--kubeconfig PATH] [--config PATH]
                                     Collect events (the default command); settings come from
                                     datadog.yaml and DD_* environment variables
  kevents status [--kubeconfig PATH] [--config PATH] [--output text|json]
                                     Show who leads (lock holder, since when, transitions), the
                                     checkpoint token (resourceVersion, age) and whether it lags;
                                     settings resolved as for run
  kevents demo [--events-per-second N] [--seed N]
                                     Run three replicas against an embedded fake API server, hand
                                     leadership over, and report delivered events, duplicates, gaps
  kevents fake-apiserver [options]   Run a fake Kubernetes API server (for trying kevents without a cluster)
  kevents version                    Print the version
  kevents --help                     Print this help

fake-apiserver options:
  --kubeconfig-out PATH      Write a kubeconfig for the server here (default ./kevents-fake.kubeconfig)
  --port N                   Listen on this port (default: any free port)
  --plain-http               Serve plain HTTP instead of HTTPS with a generated CA
  --events-per-second N      Generate this many realistic events per second (default 5; 0 = none)
  --seed N                   Seed of the event generator (default 1)
  --events-total N           Stop generating after N changes (default: never)
  --event-ttl SECONDS        Delete events this long after their last update (default 3600)
  --events-watch-quirk       Answer a stale events watch with 200 and an immediate close, as
                             kube-apiserver does for resources without a watch cache

Exit codes: 0 success, 1 runtime failure, 2 bad command line or configuration.
`;
