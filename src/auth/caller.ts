import { unauthorized } from '../lib/errors';

/**
 * Who a verified token says is calling, before the database has confirmed it: the user's id
 * and, for this service's own tokens, the token version it was issued at. A read that takes a
 * Caller confirms it in its own query (one round trip: see `confirmCaller`); everything else
 * takes the Actor that `resolveActor` confirmed first.
 */
export interface Caller {
  id: string;
  /** Absent when the caller was already confirmed (an identity provider's token, resolved up front). */
  tokenVersion?: number;
}

/**
 * The 401s of an unconfirmed caller, given the account row its query found (`undefined` when
 * none): the account must exist and the token must be of its current version (logout and
 * account deletion bump or remove it).
 */
export function confirmCaller<Account extends { tokenVersion: number }>(
  caller: Caller,
  account: Account | undefined,
): asserts account is Account {
  if (!account) throw unauthorized('The account no longer exists');
  if (caller.tokenVersion !== undefined && account.tokenVersion !== caller.tokenVersion) {
    throw unauthorized('The access token has been revoked');
  }
}
