/** Values the suites compare against: the API's id and timestamp formats, and an id that names nothing. */

/** A UUID as the API renders it (lower case). */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** ISO-8601 UTC with milliseconds, as the API renders timestamps. */
export const ISO_MS_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** A well-formed UUID that names nothing. */
export const UNKNOWN_UUID = '3b9c1f0e-7a4d-4e2b-9c8f-5d6e7f8a9b0c';
