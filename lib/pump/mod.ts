/**
 * The pump room: list+watch of core/v1 Events through a bounded queue to
 * the sinks, moving the checkpoint only past what every sink acknowledged
 * (pump.ts); the record handed to the sinks (event_record.ts); the event
 * filters and the field selector they become (filters.ts).
 *
 * @module
 */

export { runPump, WatchFailingError } from "./pump.ts";
export {
  agentFilterTerm,
  checkFilteredEventTypes,
  type EventFilterSettings,
  FieldSelectorError,
  FilteredEventTypeError,
  filtersAnything,
  NO_EVENT_FILTERS,
  planEventFilters,
} from "./filters.ts";
export { type EventRoute, routePredicate } from "./routes.ts";
