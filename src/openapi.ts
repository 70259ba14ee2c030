import { STATUS_CODES } from 'node:http';
import { generateOpenApiDocument, type OpenApiMeta, type OpenAPIObject, type OpenApiRouter } from 'trpc-to-openapi';
import { ERROR_STATUS, OWN_CODES } from './lib/errors';
import { EXAMPLE_IDS } from './lib/api-schemas';
import { MAX_INT, NO_NUL_PATTERN } from './lib/input';
import type { AppMeta } from './trpc/init';
import { appRouter } from './router';

type Response = { description: string; headers?: Record<string, unknown>; content?: Record<string, unknown> };
type Operation = {
  operationId?: string;
  security?: unknown[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: Record<string, unknown>; example?: unknown }> };
  responses: Record<string, Response>;
};

type SchemaObject = NonNullable<NonNullable<OpenAPIObject['components']>['schemas']>[string];

const int32 = (minimum: number, maximum: number) => ({ type: 'integer', format: 'int32', minimum, maximum }) as const;

/** Bounds of what an error answer carries (the largest provisioning batch is 1000 items). */
const MESSAGE_MAX = 1024;
const BATCH_MAX = 1000;
const errorCode = {
  type: 'string',
  enum: Object.keys(ERROR_STATUS),
  description: 'The tRPC error code name, or one of our own (QUOTA_EXCEEDED: 409; GONE: 410)',
} as const;

const errorSchema: SchemaObject = {
  type: 'object',
  required: ['code', 'message'],
  properties: {
    code: errorCode,
    message: { type: 'string', maxLength: MESSAGE_MAX },
    issues: {
      type: 'array',
      description: 'Validation problems, one per invalid field',
      maxItems: BATCH_MAX,
      items: {
        type: 'object',
        required: ['path', 'message'],
        properties: {
          path: { type: 'string', maxLength: MESSAGE_MAX, description: 'dotted, like workspaces.2.name' },
          message: { type: 'string', maxLength: MESSAGE_MAX, pattern: NO_NUL_PATTERN },
        },
      },
    },
    failed: {
      type: 'array',
      description: 'Provisioning items that could not be created',
      maxItems: BATCH_MAX,
      items: {
        type: 'object',
        required: ['index', 'code', 'message'],
        properties: {
          index: int32(0, BATCH_MAX - 1),
          code: errorCode,
          message: { type: 'string', maxLength: MESSAGE_MAX, pattern: NO_NUL_PATTERN },
        },
      },
    },
  },
};

/** The rate-limit window is one minute: nothing waits longer than 60 s. */
const WINDOW_SECONDS = 60;
const LIMIT_MAX = 1_000_000;

/**
 * Headers every response may carry, declared once (components.headers) and referenced from
 * each response. The RateLimit-* names are the IETF draft's.
 */
const sharedHeaders = {
  'RateLimit-Limit': {
    description:
      'Requests allowed per minute: RATE_LIMIT_PER_MINUTE per authenticated caller, AUTH_RATE_LIMIT_PER_MINUTE per client address for signup and login, UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE per client address for the 401s of every other operation (a missing or invalid token). Sent on every answer that counted against a limit: not when that limit is 0 (off), nor on answers given before the call was counted (a body that is too large or not JSON).',
    schema: int32(1, LIMIT_MAX),
  },
  'RateLimit-Remaining': { description: 'Requests left in the current window', schema: int32(0, LIMIT_MAX) },
  'RateLimit-Reset': { description: 'Seconds until the window resets', schema: int32(1, WINDOW_SECONDS) },
  'Access-Control-Allow-Origin': {
    description:
      "The request's Origin, echoed when it is one of CORS_ORIGINS (none by default); absent otherwise, so browsers on other origins cannot read the answer.",
    schema: { type: 'string', format: 'uri', maxLength: 2048 },
  },
  'Retry-After': { description: 'Seconds to wait before retrying', schema: int32(1, WINDOW_SECONDS) },
  'X-Request-Id': {
    description:
      "The caller's own X-Request-Id (1–128 visible ASCII characters), echoed; the service's own id (as X-Service-Request-Id) when the request carried none or another value.",
    required: true,
    schema: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$' },
  },
  'X-Service-Request-Id': {
    description:
      "The service's own id of the request: the `request_id` of the audit events it wrote and the `requestId` of its log line (the caller's id is `client_request_id` and `clientRequestId` there).",
    required: true,
    schema: { type: 'string', format: 'uuid', maxLength: 36 },
  },
} as const;
type HeaderName = keyof typeof sharedHeaders;

const ref = (name: HeaderName) => ({ $ref: `#/components/headers/${name}` });
/** On every response: the rate-limit state and CORS (both optional; see their descriptions), and the request's ids. */
const everyResponse = {
  'RateLimit-Limit': ref('RateLimit-Limit'),
  'RateLimit-Remaining': ref('RateLimit-Remaining'),
  'RateLimit-Reset': ref('RateLimit-Reset'),
  'Access-Control-Allow-Origin': ref('Access-Control-Allow-Origin'),
  'X-Request-Id': ref('X-Request-Id'),
  'X-Service-Request-Id': ref('X-Service-Request-Id'),
};
/** A 429 always says when to retry and how the limit stands. */
const required = (name: HeaderName) => ({ ...sharedHeaders[name], required: true });
const tooManyRequests = {
  'Retry-After': required('Retry-After'),
  'RateLimit-Limit': required('RateLimit-Limit'),
  'RateLimit-Remaining': required('RateLimit-Remaining'),
  'RateLimit-Reset': required('RateLimit-Reset'),
  'Access-Control-Allow-Origin': ref('Access-Control-Allow-Origin'),
  'X-Request-Id': ref('X-Request-Id'),
  'X-Service-Request-Id': ref('X-Service-Request-Id'),
};
/** A 503 always says when to retry: the database's and the load shedder's alike. */
const serviceUnavailable = { 'Retry-After': required('Retry-After'), ...everyResponse };
const SERVICE_UNAVAILABLE_DESCRIPTION =
  'Service Unavailable: the database is unreachable or did not answer within the request deadline, or the service is shedding load (its event loop is saturated: refused before any work, nothing written). Retry after `Retry-After` seconds.';
/** Every 201 that makes one resource names it (signup and provisioning, which make several, send none). */
const location = {
  description: 'Path of the created resource',
  required: true,
  schema: { type: 'string', format: 'uri-reference', maxLength: 255, example: `/api/v1/workspaces/${EXAMPLE_IDS.workspace}` },
};

/** Each status's tRPC code (our own codes share a status with one). */
const STATUS_CODE = Object.fromEntries(
  Object.entries(ERROR_STATUS)
    .filter(([code]) => !(code in OWN_CODES))
    .map(([code, status]) => [status, code]),
) as Record<number, string>;

/**
 * One example per error status, with that status's own code (otherwise Swagger UI shows the
 * first value of the code enum, BAD_REQUEST, under every error). The messages are the service's.
 */
const ERROR_EXAMPLES: Record<number, { message: string; issues?: Array<{ path: string; message: string }> }> = {
  400: { message: 'Invalid input: name: must not be blank', issues: [{ path: 'name', message: 'must not be blank' }] },
  403: { message: 'This needs the admin role in the organization (you are member)' },
  404: { message: 'Workspace not found' },
  409: { message: 'The slug "marketing" is taken in this organization' },
  410: { message: 'This invitation has expired; ask for a new one' },
  412: { message: 'The workspace is at version 4; read it again and retry' },
  413: { message: 'The request body is over 1048576 bytes (1 MiB)' },
  415: { message: 'The request body must be JSON (Content-Type: application/json)' },
  422: { message: 'This Idempotency-Key was used with a different request' },
  429: { message: 'Rate limit exceeded: at most 1200 requests per minute for this account; retry in 12 s' },
  500: { message: 'Internal server error' },
  503: { message: 'The database is unavailable; try again shortly' },
};
const lastOwner = 'an organization must keep at least one owner (make another member owner first)';
const ORGANIZATION_NOT_FOUND = { 404: { message: 'Organization not found' } };
const INVITATION_NOT_FOUND = { 404: { message: 'Invitation not found' } };
/** Where an operation's own message says more than the general one, by operationId and status. */
const OPERATION_ERROR_EXAMPLES: Record<string, Record<number, { message: string; failed?: unknown[] }>> = {
  signup: { 409: { message: 'An account with this email already exists' } },
  login: { 401: { message: 'Invalid email or password' } },
  deleteMe: {
    409: { message: 'You are the last owner of an organization that has other members; make another member owner first' },
  },
  createOrganization: { 409: { message: 'The organization slug "acme-research" is taken' } },
  updateOrganization: { ...ORGANIZATION_NOT_FOUND, 409: { message: 'The organization slug "acme-research" is taken' } },
  getOrganization: ORGANIZATION_NOT_FOUND,
  deleteOrganization: ORGANIZATION_NOT_FOUND,
  getOrganizationSettings: ORGANIZATION_NOT_FOUND,
  updateOrganizationSettings: ORGANIZATION_NOT_FOUND,
  listMembers: ORGANIZATION_NOT_FOUND,
  getMember: { 404: { message: 'Member not found' } },
  updateMember: { 404: { message: 'Member not found' }, 409: { message: `Cannot demote the last owner: ${lastOwner}` } },
  removeMember: { 404: { message: 'Member not found' }, 409: { message: `Cannot remove the last owner: ${lastOwner}` } },
  listOrganizationWorkspaces: ORGANIZATION_NOT_FOUND,
  createOrganizationWorkspace: ORGANIZATION_NOT_FOUND,
  listWorkspaces: ORGANIZATION_NOT_FOUND,
  createWorkspace: ORGANIZATION_NOT_FOUND,
  provisionWorkspaces: {
    ...ORGANIZATION_NOT_FOUND,
    409: {
      message: '1 item(s) conflict; nothing was created',
      failed: [{ index: 1, code: 'CONFLICT', message: 'The slug "sales" is taken in this organization' }],
    },
  },
  deleteWorkspace: { 409: { message: 'The default workspace cannot be deleted; make another workspace the default first' } },
  createOrganizationInvitation: {
    ...ORGANIZATION_NOT_FOUND,
    403: { message: 'Only an owner can invite an owner' },
    409: { message: 'An invitation to this email is already pending (5c2a8e1f-3b4d-4a6c-9e7f-0a1b2c3d4e5f)' },
  },
  listOrganizationInvitations: ORGANIZATION_NOT_FOUND,
  createWorkspaceInvitation: {
    403: { message: 'The workspace does not allow guests (permissions.allow_guests is false)' },
    409: { message: 'This email is already a member of the workspace' },
  },
  getInvitation: INVITATION_NOT_FOUND,
  resendInvitation: {
    ...INVITATION_NOT_FOUND,
    409: { message: 'The invitation is accepted; only a pending or expired one can be changed' },
  },
  revokeInvitation: {
    ...INVITATION_NOT_FOUND,
    409: { message: 'The invitation is accepted; only a pending or expired one can be changed' },
  },
  previewInvitation: INVITATION_NOT_FOUND,
  acceptInvitation: {
    ...INVITATION_NOT_FOUND,
    403: { message: 'This invitation is for another email address' },
    409: { message: 'This invitation cannot be accepted now: the workspace does not allow guests (permissions.allow_guests is false)' },
  },
  declineInvitation: { ...INVITATION_NOT_FOUND, 403: { message: 'This invitation is for another email address' } },
};
/** The operations a quota can refuse, and what their 409 then says (README, Security: Quotas). */
const WORKSPACE_QUOTA_409 =
  '`QUOTA_EXCEEDED`: the organization holds MAX_WORKSPACES_PER_ORGANIZATION workspaces (archived ones included); nothing was created';
const INVITATION_QUOTA_409 = '`QUOTA_EXCEEDED`: the organization holds INVITATIONS_PENDING_MAX pending invitations; nothing was created';
const QUOTA_409: Record<string, string> = {
  createWorkspace: WORKSPACE_QUOTA_409,
  createOrganizationWorkspace: WORKSPACE_QUOTA_409,
  cloneWorkspace: WORKSPACE_QUOTA_409,
  provisionWorkspaces: `${WORKSPACE_QUOTA_409} (in partial mode the items over it are in \`failed\` of a 201 instead)`,
  createOrganization: '`QUOTA_EXCEEDED`: the caller has created MAX_ORGANIZATIONS_PER_USER organizations; nothing was created',
  createOrganizationInvitation: INVITATION_QUOTA_409,
  createWorkspaceInvitation: INVITATION_QUOTA_409,
};
const UNAUTHORIZED_EXAMPLE = { message: 'Missing Authorization header (expected "Bearer <access_token>")' };
/** The code of a status no tRPC code has (410): our own code of that status. */
const ownCodeOf = (status: number) => Object.keys(OWN_CODES).find((code) => ERROR_STATUS[code as keyof typeof OWN_CODES] === status);
const errorExample = (operationId: string, status: number) => ({
  code: STATUS_CODE[status] ?? ownCodeOf(status) ?? 'INTERNAL_SERVER_ERROR',
  ...(OPERATION_ERROR_EXAMPLES[operationId]?.[status] ??
    (status === 401 ? UNAUTHORIZED_EXAMPLE : undefined) ??
    ERROR_EXAMPLES[status] ?? { message: 'Error' }),
});

const TAGS = [
  { name: 'auth', description: 'Accounts and access tokens: sign up, log in, log out, and the caller itself.' },
  {
    name: 'organizations',
    description:
      'Organizations (tenants), their members and roles (owner, admin, member), their settings, and the workspaces in one organization.',
  },
  {
    name: 'workspaces',
    description:
      "Workspaces across the caller's organizations: create, list, read, update (with If-Match), delete, archive and restore, clone, bulk provisioning, and settings overrides resolved over the organization's settings and locks.",
  },
  {
    name: 'invitations',
    description:
      'Membership by consent: invitations to an organization or to one workspace (guests from outside the organization), their tokens (shown once), preview, accept, decline, resend and revoke.',
  },
  {
    name: 'audit',
    description:
      'The audit trail: every change (workspaces, settings and locks, organizations, members) as an event with its actor, the changed paths and the request id; newest first, filtered, keyset-paginated.',
  },
];

const LICENSE = { name: 'Proprietary', identifier: 'LicenseRef-Proprietary' };

const DESCRIPTION = [
  'Multi-tenant workspace management. Every operation except signup and login needs `Authorization: Bearer <access_token>` (get one from /auth/signup or /auth/login, then use Authorize).',
  '',
  '**Rate limits.** Every operation is limited per minute: per authenticated caller (`RATE_LIMIT_PER_MINUTE`, default 1200), per client address for signup and login (`AUTH_RATE_LIMIT_PER_MINUTE`, default 20), and per client address for the 401s of the other operations — missing, malformed, forged, expired or revoked tokens (`UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE`, default 60; valid tokens never count there). Over the limit the answer is 429 `TOO_MANY_REQUESTS` with `Retry-After` (seconds); answers that counted against a limit carry `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the window resets).',
  '',
  "**Request ids.** Every answer carries `X-Service-Request-Id`, the service's own id of the request (audit events' `request_id`). A caller's own `X-Request-Id` (1–128 visible ASCII) is echoed as `X-Request-Id` and kept as events' `client_request_id`; without one, `X-Request-Id` is the service's id.",
  '',
  '**Quotas.** An organization holds at most `MAX_WORKSPACES_PER_ORGANIZATION` workspaces (default 50,000, archived ones included) and a user creates at most `MAX_ORGANIZATIONS_PER_USER` organizations (default 100); past either, the create answers 409 with the code `QUOTA_EXCEEDED` and a message naming the limit, and writes nothing.',
  '',
  '**Load shedding.** While the event loop is saturated (`SHED_EVENT_LOOP_DELAY_MS`), every operation answers 503 `SERVICE_UNAVAILABLE` with `Retry-After` before doing any work.',
  '',
  '**CORS.** Browsers may call from the origins listed in `CORS_ORIGINS` (none by default): only their answers carry `Access-Control-Allow-Origin`.',
].join('\n');

const bearerAuth = {
  type: 'http',
  scheme: 'bearer',
  bearerFormat: 'JWT',
  description:
    "A JWS access token, checked as RFC8725 (JWT best current practices) asks: the algorithm is pinned per key (HS256 for this service's own tokens; RS256/ES256 only from the configured identity provider; never `none`), `iss`, `aud`, `sub`, `iat` and `exp` are required and checked, and the lifetime is capped (TOKEN_MAX_LIFETIME).",
} as const;

/**
 * The OpenAPI document of every REST operation, from the router's meta, with what the
 * generator cannot express: the real success status (201/204), `Location` on creates, one
 * error schema `{ code, message, issues?, failed? }` for every error response, the 429 and
 * rate-limit and CORS headers of every operation, open security on the public operations,
 * and integer formats and UUID lengths throughout.
 */
export function buildOpenApiDocument(): OpenAPIObject {
  const document = generateOpenApiDocument(appRouter as unknown as OpenApiRouter, {
    title: 'Workspaces API',
    version: '1.0.0',
    description: DESCRIPTION,
    baseUrl: '/api/v1',
    license: LICENSE,
    tags: TAGS.map((tag) => tag.name),
    securitySchemes: { bearerAuth },
  });
  document.tags = TAGS;
  const procedures = new Map<string, { meta: OpenApiMeta<AppMeta>; input: unknown }>();
  for (const procedure of Object.values(appRouter._def.procedures)) {
    const { meta, inputs } = (procedure as unknown as { _def: { meta?: OpenApiMeta<AppMeta>; inputs: unknown[] } })._def;
    if (meta?.openapi?.operationId) procedures.set(meta.openapi.operationId, { meta, input: inputs[0] });
  }
  for (const pathItem of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(pathItem as Record<string, Operation>)) {
      const { meta = {}, input } = procedures.get(operation.operationId ?? '') ?? {};
      // Signup and login are open: said explicitly, so no global default can make them protected.
      if (meta.openapi?.protect === false) operation.security = [];
      fixRequestBody(operation, meta, input);
      fixResponses(operation, meta);
    }
  }
  // The generator's per-code error schemas are replaced by the one Error schema above.
  const schemas = Object.fromEntries(Object.entries(document.components?.schemas ?? {}).filter(([name]) => !name.startsWith('error.')));
  document.components = { ...document.components, schemas: { ...schemas, Error: errorSchema }, headers: sharedHeaders };
  boundSchemas(document);
  return document;
}

/** Zod 4's strict object (`z.strictObject`, refined or not): unknown fields are refused. */
const isStrictObject = (schema: unknown) => {
  const def = (schema as { _zod?: { def?: { type?: string; catchall?: { _zod?: { def?: { type?: string } } } } } })?._zod?.def;
  return def?.type === 'object' && def.catchall?._zod?.def?.type === 'never';
};

/** Whether a schema carries a rule of its own (`.refine`) beyond its fields'. */
const isRefined = (schema: unknown) => ((schema as { _zod?: { def?: { checks?: unknown[] } } })?._zod?.def?.checks?.length ?? 0) > 0;

/**
 * The body's example (so Swagger UI pre-fills one the server accepts, not `additionalProp1`
 * keys the settings maps refuse), `additionalProperties: false` where the generator
 * dropped it (it rebuilds a refined input without its path parameters as a plain object), and
 * `required: false` for a body without required fields.
 */
function fixRequestBody(operation: Operation, { requestExample }: AppMeta, input: unknown): void {
  const media = operation.requestBody?.content?.['application/json'];
  if (!media) return;
  if (requestExample) media.example = requestExample;
  const schema = media.schema;
  if (schema && schema.type === 'object' && schema.additionalProperties === undefined && isStrictObject(input)) {
    schema.additionalProperties = false;
  }
  // A body of optional fields only, with no rule over them ("give at least one"), may be left
  // out (archive, restore, settings): the adapter reads no body as {}.
  const requiresFields = Array.isArray(schema?.required) && schema.required.length > 0;
  if (schema && schema.type === 'object' && !requiresFields && !isRefined(input)) operation.requestBody!.required = false;
}

function fixResponses(operation: Operation, { successStatus, withoutLocation }: AppMeta): void {
  const status = successStatus ?? 200;
  const responses: Operation['responses'] = {};
  for (const [code, response] of Object.entries(operation.responses)) {
    if (code === '200') {
      if (status === 204) responses['204'] = { description: 'No content', headers: { ...everyResponse } };
      else if (status === 201) {
        responses['201'] = {
          ...response,
          description: 'Created',
          headers: { ...response.headers, ...(withoutLocation ? {} : { Location: location }), ...everyResponse },
        };
      } else responses['200'] = { ...response, headers: { ...response.headers, ...everyResponse } };
      continue;
    }
    responses[code] = {
      description:
        code === '503'
          ? SERVICE_UNAVAILABLE_DESCRIPTION
          : code === '409' && QUOTA_409[operation.operationId ?? '']
            ? `Conflict; or ${QUOTA_409[operation.operationId ?? '']}`
            : (STATUS_CODES[Number(code)] ?? 'Error'),
      headers:
        code === '429'
          ? tooManyRequests
          : code === '503'
            ? serviceUnavailable
            : { ...(code === '409' ? { 'Retry-After': ref('Retry-After') } : {}), ...everyResponse },
      content: {
        'application/json': {
          schema: { $ref: '#/components/schemas/Error' },
          example: errorExample(operation.operationId ?? '', Number(code)),
        },
      },
    };
  }
  operation.responses = responses;
}

/**
 * What the schemas imply but the generator does not write: every integer of this API fits 32
 * bits (inputs are bounded by 2^31 - 1, outputs are database `integer`s), and a UUID is 36
 * characters. Walks the whole document, paths and components.
 */
function boundSchemas(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) boundSchemas(item);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const schema = node as Record<string, unknown>;
  const types = Array.isArray(schema.type) ? (schema.type as unknown[]) : [schema.type];
  if (types.includes('integer') && schema.format === undefined) {
    const fits =
      typeof schema.minimum === 'number' &&
      schema.minimum >= -MAX_INT - 1 &&
      typeof schema.maximum === 'number' &&
      schema.maximum <= MAX_INT;
    schema.format = fits ? 'int32' : 'int64';
  }
  if (types.includes('string') && schema.format === 'uuid' && schema.maxLength === undefined) schema.maxLength = 36;
  for (const value of Object.values(schema)) boundSchemas(value);
}
