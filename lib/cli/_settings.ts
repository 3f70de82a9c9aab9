/**
 * What `kevents run` and `kevents status` resolve alike before anything
 * else: the configuration (datadog.yaml where `--config`, DD_CONF_PATH or
 * the working directory say, the Agent 5's file, the environment) and the
 * kubeconfig (`--kubeconfig`, KUBECONFIG, ~/.kube/config, in-cluster).
 *
 * @module
 */

import { type Config, loadConfig } from "../config/mod.ts";
import { type LoadedKubeConfig, loadKubeConfig, SERVICE_ACCOUNT_DIR } from "../kube/mod.ts";

/** Resolves both; throws ConfigError or KubeConfigError on bad input. */
export function loadSettings(
  cmd: { config?: string; kubeconfig?: string },
  env: Record<string, string>,
): { config: Config; kube: LoadedKubeConfig } {
  const config = loadConfig({
    config: cmd.config,
    env,
    serviceAccountNamespaceFile: `${SERVICE_ACCOUNT_DIR}/namespace`,
  });
  const kube = loadKubeConfig({
    path: cmd.kubeconfig,
    envKubeconfig: env.KUBECONFIG,
    home: env.HOME,
    serviceHost: env.KUBERNETES_SERVICE_HOST,
    servicePort: env.KUBERNETES_SERVICE_PORT,
  });
  return { config, kube };
}
