/**
 * The served OpenAPI document, read the way a client generator would: every operation with its
 * method, path, parameters, request body and documented responses, `$ref`s resolved into
 * `components.schemas`, and ajv validators compiled from the document itself (JSON Schema
 * 2020-12, as OpenAPI 3.1 uses) for request bodies, responses and parameters.
 * @module
 */
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';

export type Schema = Record<string, any>;

export interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required: boolean;
  schema: Schema;
}

export interface Operation {
  /** `METHOD /path` as the document names it (without the /api/v1 server prefix). */
  key: string;
  method: string;
  path: string;
  operationId: string;
  pathParams: Parameter[];
  queryParams: Parameter[];
  headerParams: Parameter[];
  /** The JSON request body schema, `$ref`s left in place (the validators resolve them). */
  bodySchema?: Schema;
  successStatus: number;
  successSchema?: Schema;
  /** Response headers documented on the success response, with `required` as documented. */
  successHeaders: Record<string, { required: boolean }>;
  /** Every status the document lists for the operation. */
  statuses: Set<number>;
  /** Needs the bearer token. */
  secured: boolean;
}

export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, any>>;
  components: { schemas: Record<string, Schema> };
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

export function operationsOf(doc: OpenApiDocument): Operation[] {
  const operations: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!METHODS.includes(method)) continue;
      const parameters: Parameter[] = (op.parameters ?? []).map((p: any) => ({
        name: p.name,
        in: p.in,
        required: p.required === true,
        schema: p.schema ?? {},
      }));
      const success = Object.keys(op.responses).find((status) => status.startsWith('2'));
      if (!success) throw new Error(`${method.toUpperCase()} ${path} documents no success response`);
      const successResponse = op.responses[success];
      operations.push({
        key: `${method.toUpperCase()} ${path}`,
        method: method.toUpperCase(),
        path,
        operationId: op.operationId,
        pathParams: parameters.filter((p) => p.in === 'path'),
        queryParams: parameters.filter((p) => p.in === 'query'),
        headerParams: parameters.filter((p) => p.in === 'header'),
        bodySchema: op.requestBody?.content?.['application/json']?.schema,
        successStatus: Number(success),
        successSchema: successResponse.content?.['application/json']?.schema,
        successHeaders: Object.fromEntries(
          Object.entries(successResponse.headers ?? {}).map(([name, header]: [string, any]) => [
            name,
            { required: header.required === true },
          ]),
        ),
        statuses: new Set(Object.keys(op.responses).map(Number)),
        secured: Array.isArray(op.security) && op.security.length > 0,
      });
    }
  }
  return operations;
}

/** Follows `$ref`s (`#/components/schemas/X`) until a schema with content. */
export function resolverFor(doc: OpenApiDocument): (schema: Schema) => Schema {
  return function resolve(schema: Schema): Schema {
    let current = schema;
    for (let hops = 0; typeof current?.$ref === 'string'; hops++) {
      if (hops > 20) throw new Error(`$ref loop at ${current.$ref}`);
      const match = /^#\/components\/schemas\/(.+)$/.exec(current.$ref);
      if (!match) throw new Error(`unsupported $ref ${current.$ref}`);
      const target = doc.components.schemas[match[1]!];
      if (!target) throw new Error(`unresolved $ref ${current.$ref}`);
      current = target;
    }
    return current;
  };
}

const DOC_ID = 'openapi.json';

/** Rewrites `#/components/...` refs so they resolve against the registered document. */
function anchored(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(anchored);
  if (!schema || typeof schema !== 'object') return schema;
  return Object.fromEntries(
    Object.entries(schema).map(([key, value]) => [
      key,
      key === '$ref' && typeof value === 'string' && value.startsWith('#/') ? `${DOC_ID}${value}` : anchored(value),
    ]),
  );
}

export interface Validators {
  /** A validator for any schema taken from the document (inline or `$ref`). */
  compile(schema: Schema): ValidateFunction;
  /** The documented error body. */
  error: ValidateFunction;
}

export function validatorsFor(doc: OpenApiDocument): Validators {
  // strict: false — the document carries OpenAPI keywords (`description`, `example`…) ajv need not know.
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
  addFormats(ajv);
  ajv.addSchema({ $id: DOC_ID, components: anchored(doc.components) as object });
  const cache = new Map<Schema, ValidateFunction>();
  const compile = (schema: Schema) => {
    let validate = cache.get(schema);
    if (!validate) {
      validate = ajv.compile(anchored(schema) as Schema);
      cache.set(schema, validate);
    }
    return validate;
  };
  return { compile, error: compile({ $ref: '#/components/schemas/Error' }) };
}

/** ajv's errors as one line each, for failure messages. */
export const describeErrors = (validate: ValidateFunction) =>
  (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`).join('; ');
