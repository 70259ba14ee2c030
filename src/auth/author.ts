/**
 * Who makes a change, as its audit event records it: the confirmed user (its id, and its
 * email as it is now) and the request that carried the change (its `X-Request-Id`).
 */
export interface Author {
  id: string;
  email: string;
  requestId: string;
}
