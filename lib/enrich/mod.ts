/**
 * The enrichment room: what kevents learns about the objects events are
 * about (owners, labels, node), through a small bounded cache filled by
 * get-on-miss within a request budget per batch, and turned into the
 * record's `enrichment` for every sink. A failure degrades to fewer tags,
 * never to a lost or delayed event beyond the budget.
 *
 * @module
 */

export { deploymentOfReplicaSet, Enricher, type EnricherOptions } from "./enricher.ts";
export { factsOf, ObjectCache, type ObjectCacheOptions, type ObjectFacts } from "./object_cache.ts";
