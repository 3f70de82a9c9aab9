# kevents: one self-contained binary in a distroless, non-root image.
#   docker build -t kevents .
# The build stage needs denort (downloaded by `deno compile`); where it cannot
# be downloaded, pass one in with --build-arg DENORT_BIN=/path and a bind mount.
FROM denoland/deno:2.9.6 AS build
WORKDIR /src
COPY deno.json deno.lock ./
COPY main.ts ./
COPY lib ./lib
RUN deno install --frozen --entrypoint main.ts \
 && deno compile --frozen --allow-net --allow-read --allow-write --allow-env \
      --output /out/kevents main.ts

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/kevents /kevents
USER 65532:65532
ENTRYPOINT ["/kevents"]
CMD ["--help"]
