/**
 * A raw HTTP client for the fuzzer: node:http with keep-alive, so a request can carry what
 * `fetch` refuses (a body on GET, any header value node accepts, a path sent exactly as given).
 * @module
 */
import http from 'node:http';

export interface RawRequest {
  method: string;
  /** Sent as is: already percent-encoded where it should be. */
  path: string;
  headers: Record<string, string>;
  body?: Buffer | string;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The parsed JSON, or undefined when the text is empty or not JSON. */
  body: any;
  json: boolean;
}

export function createClient(baseUrl: string) {
  const base = new URL(baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  function send(request: RawRequest): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      const body =
        request.body === undefined ? undefined : Buffer.isBuffer(request.body) ? request.body : Buffer.from(request.body, 'utf8');
      const headers: Record<string, string | number> = { ...request.headers };
      if (body !== undefined) headers['content-length'] = body.length;
      const req = http.request(
        { host: base.hostname, port: base.port, method: request.method, path: request.path, headers, agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            let json = false;
            if (text) {
              try {
                parsed = JSON.parse(text);
                json = true;
              } catch {
                parsed = undefined;
              }
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body: parsed, json });
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }
  return { send, close: () => agent.destroy() };
}
