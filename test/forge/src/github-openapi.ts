import { Ajv, type ValidateFunction } from 'ajv';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * Checks forge responses against GitHub's published OpenAPI description (@octokit/openapi,
 * `api.github.com.json`). The description is OpenAPI 3.0, whose `nullable` Ajv does not take
 * without a `type`, so schemas are rewritten to plain JSON Schema (`type: [t, 'null']` or
 * `anyOf: [{type: 'null'}, ...]`) before compiling. Only what a response is checked against gets
 * compiled, so loading stays cheap.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const DOC_ID = 'https://forge.invalid/api.github.com.json';

interface OpenApiDoc {
  openapi: string;
  info: { version: string };
  paths: Record<string, Record<string, { responses?: Record<string, JsonObject> }>>;
  components: { schemas: Record<string, JsonObject>; responses: Record<string, JsonObject> };
}

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** OpenAPI 3.0 schema -> JSON Schema: `nullable`, and `$ref`s pointed into the registered document. */
function toJsonSchema(node: Json): Json {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (!isObject(node)) return node;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$ref' && typeof v === 'string' && v.startsWith('#/')) out[k] = `${DOC_ID}${v}`;
    else if (k === 'discriminator' || k === 'example' || k === 'examples') continue;
    else out[k] = toJsonSchema(v);
  }
  if (out.nullable === true) {
    delete out.nullable;
    if (typeof out.type === 'string') {
      out.type = [out.type, 'null'];
      if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null];
      return out;
    }
    return { anyOf: [{ type: 'null' }, out] };
  }
  if (out.nullable === false) delete out.nullable;
  return out;
}

const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;

export interface ResponseCheck {
  ok: boolean;
  /** Human-readable problems, empty when ok. */
  problems: string[];
  /** Which description entry was used, e.g. `GET /user 200`. */
  against: string;
}

export class GithubOpenApi {
  private readonly ajv: Ajv;
  private readonly compiled = new Map<string, ValidateFunction>();

  private constructor(private readonly doc: OpenApiDoc) {
    const formats: Record<string, true | RegExp | ((s: string) => boolean)> = {};
    const collect = (n: Json): void => {
      if (Array.isArray(n)) n.forEach(collect);
      else if (isObject(n)) {
        if (typeof n.format === 'string') formats[n.format] = true;
        Object.values(n).forEach(collect);
      }
    };
    collect(doc.components.schemas);
    formats['date-time'] = DATE_TIME;
    formats.uri = (s: string): boolean => URL.canParse(s);
    formats.email = /^[^\s@]+@[^\s@]+$/;
    this.ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false, formats });
    const schemas: JsonObject = {};
    for (const [name, schema] of Object.entries(doc.components.schemas)) schemas[name] = toJsonSchema(schema);
    this.ajv.addSchema({ $id: DOC_ID, components: { schemas } });
  }

  static async load(file = 'api.github.com.json'): Promise<GithubOpenApi> {
    const require = createRequire(import.meta.url);
    const dir = dirname(require.resolve('@octokit/openapi/package.json'));
    const doc = JSON.parse(await readFile(join(dir, 'generated', file), 'utf8')) as OpenApiDoc;
    return new GithubOpenApi(doc);
  }

  get version(): string {
    return this.doc.info.version;
  }

  /** Statuses the description documents for an operation. */
  statuses(method: string, path: string): string[] {
    return Object.keys(this.doc.paths[path]?.[method.toLowerCase()]?.responses ?? {});
  }

  /**
   * Validates one response. An error status the description does not list is checked against
   * `basic-error`, the shape GitHub gives every error.
   */
  check(method: string, path: string, status: number, body: unknown): ResponseCheck {
    const op = this.doc.paths[path]?.[method.toLowerCase()];
    const against = `${method.toUpperCase()} ${path} ${status}`;
    if (!op) return { ok: false, problems: [`${method} ${path} is not in the description`], against };
    let response = op.responses?.[String(status)];
    if (response === undefined) {
      if (status >= 400)
        return this.checkSchema(
          `basic-error`,
          { $ref: `${DOC_ID}#/components/schemas/basic-error` },
          body,
          `${against} (undocumented: basic-error)`,
        );
      return {
        ok: false,
        problems: [
          `status ${status} is not documented for ${method} ${path} (documented: ${this.statuses(method, path).join(', ')})`,
        ],
        against,
      };
    }
    if (typeof response.$ref === 'string') {
      response = this.doc.components.responses[response.$ref.split('/').pop() ?? ''] ?? {};
    }
    const content = response.content;
    const schema =
      isObject(content) && isObject(content['application/json']) ? content['application/json'].schema : undefined;
    if (schema === undefined && status >= 400) {
      // An error documented without content: GitHub still sends its error body.
      const basic = { $ref: `${DOC_ID}#/components/schemas/basic-error` };
      return this.checkSchema('basic-error', basic, body, `${against} (no content documented: basic-error)`);
    }
    if (schema === undefined) {
      const empty = body === undefined || body === null || body === '';
      return {
        ok: empty,
        problems: empty ? [] : [`${against} documents no body, got ${JSON.stringify(body).slice(0, 200)}`],
        against,
      };
    }
    return this.checkSchema(against, toJsonSchema(schema) as JsonObject, body, against);
  }

  private checkSchema(key: string, schema: JsonObject, body: unknown, against: string): ResponseCheck {
    let validate = this.compiled.get(key);
    if (!validate) {
      validate = this.ajv.compile(schema);
      this.compiled.set(key, validate);
    }
    if (validate(body)) return { ok: true, problems: [], against };
    // A body matching more than one `oneOf` branch fits the description; the branches overlap
    // (e.g. basic-error and repository-rule-violation-error require nothing), so that is no problem.
    const errors = (validate.errors ?? []).filter(
      (e) => !(e.keyword === 'oneOf' && Array.isArray((e.params as { passingSchemas?: unknown }).passingSchemas)),
    );
    if (errors.length === 0) return { ok: true, problems: [], against };
    const problems = errors
      .slice(0, 20)
      .map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
    return { ok: false, problems, against };
  }
}
