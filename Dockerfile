# kevents: one self-contained binary in a distroless, non-root image.
#   docker build -t kevents .
#
# The build stage runs `deno task compile`, so the image's binary has exactly the task's
# flags (deno.json):
#   --allow-net    the API server and the sinks (webhook, Datadog), whose hosts are known
#                  only at run time; the health endpoint's listener on :5555
#   --allow-env    settings (DD_*, KEVENTS_*, KUBERNETES, POD_NAME, KUBECONFIG, HOME...);
#                  main.ts reads the whole environment once
#   --allow-read   the in-cluster token, CA and namespace; datadog.yaml and its
#                  conf.d/kubernetes.yaml (and the Agent 5 one in /etc/dd-agent); the webhook
#                  sink's CA, client certificate and key; a kubeconfig outside a cluster. These
#                  paths are the user's to choose (--kubeconfig, KUBECONFIG, ~/.kube/config,
#                  DD_CONF_PATH), so reading is not narrowed to fixed folders: the same binary
#                  must also run locally against any kubeconfig. Nothing is written or run.
#   no --allow-write, --allow-run, --allow-sys, --allow-ffi: `run` needs none of them
#   --no-code-cache  V8's code cache would be written to the temporary folder: the binary
#                  writes nothing, so it runs on a read-only root file system
# `kevents demo` works in the image too (an in-memory fake API server on 127.0.0.1).
# `kevents fake-apiserver` does not: it writes a kubeconfig, which needs --allow-write; run
# it from the source tree (`deno task fake-apiserver`).
#
# deno compile downloads its runtime, denort, on first use. Where it cannot, put a denort
# for this Deno version (2.9.6) in the build context as ./denort and pass its path; deno
# compile reads DENORT_BIN itself:
#   docker build --build-arg DENORT_BIN=/src/denort -t kevents .
FROM denoland/deno:2.9.6 AS build
ARG DENORT_BIN=
WORKDIR /src
# denort* matches nothing unless a denort was put in the context: BuildKit copies nothing then.
COPY deno.json deno.lock denort* ./
COPY main.ts ./
COPY lib ./lib
# An empty DENORT_BIN would be read as a path: unset it unless one was given.
RUN deno install --frozen --entrypoint main.ts \
 && if [ -z "$DENORT_BIN" ]; then unset DENORT_BIN; fi \
 && deno task compile \
 && ./dist/kevents version

FROM gcr.io/distroless/cc-debian12:nonroot
# The folder datadog.yaml is read from (./datadog.yaml): the Datadog Agent's configuration folder.
WORKDIR /etc/datadog-agent
COPY --from=build /src/dist/kevents /kevents
USER 65532:65532
ENTRYPOINT ["/kevents"]
CMD ["run"]
