import { execFile } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A self-signed certificate for a test server, written as DIR/cert.pem and DIR/key.pem. The tests trust it as
 * a private CA (`caFile`), never by turning verification off. `names` lists the subject alternative names
 * (host names or IP addresses); the first is the CN.
 */
export async function makeCertificate(dir: string, names: string[]): Promise<void> {
  const san = names.map((n) => (net.isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '3650',
    '-subj',
    `/CN=${names[0]}`,
    '-addext',
    `subjectAltName=${san}`,
    '-keyout',
    path.join(dir, 'key.pem'),
    '-out',
    path.join(dir, 'cert.pem'),
  ]);
}
