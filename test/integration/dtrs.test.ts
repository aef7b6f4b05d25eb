import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { DtrsClient } from '../../src/client-dtrs.js';
import { unary } from '../../src/client.js';
import { DTRS_REF } from '../../src/actors/dtrs.js';
import { TestCluster } from '../support/cluster.js';
import { removeDir, runCli, startNode, tempDir, type NodeProcess } from '../support/node-process.js';
import { failureOf } from '../support/grpc-status.js';

const SECRET = 'AKIAIOSFODNN7EXAMPLE';
const LOCAL_SITE = { type: 'local', description: 'this machine', settings: { baseDir: '/var/lib/cei/here', capacity: 4 } };
const SLEEPER = {
  description: 'the sleeper',
  sites: { here: { args: ['--tag', '${name}'], env: { WHO: '${who}' }, slots: 2 } },
};

describe('the Dtrs service on a real node', () => {
  let dir: string;
  let node: NodeProcess;
  let dtrs: DtrsClient;

  beforeAll(async () => {
    dir = tempDir();
    node = await startNode({ dataDir: dir });
    dtrs = new DtrsClient(node.address);
  });

  afterAll(async () => {
    dtrs?.close();
    if (node) expect(await node.stop()).toBe(0);
    removeDir(dir);
  });

  it('adds, describes, lists, updates and removes sites and deployable types, and resolves a launch spec', async () => {
    expect(await dtrs.addSite('here', LOCAL_SITE)).toMatchObject({ created: true, record: { name: 'here', version: 1 } });
    expect((await dtrs.addSite('here', LOCAL_SITE)).created).toBe(false);
    await dtrs.addSite('sim1', { type: 'sim' });
    expect(await dtrs.addDt('sleeper', SLEEPER)).toEqual({ created: true, record: { name: 'sleeper', version: 1, definition: SLEEPER } });
    expect(await dtrs.describeDt('sleeper')).toEqual({ name: 'sleeper', version: 1, definition: SLEEPER });
    expect(await dtrs.describeSite('here')).toEqual({ name: 'here', version: 1, definition: LOCAL_SITE, used_by: ['sleeper'], has_credentials: false });
    expect((await dtrs.listSites()).map((s) => [s.name, s.definition.type])).toEqual([
      ['here', 'local'],
      ['sim1', 'sim'],
    ]);

    expect(await dtrs.lookup('sleeper', 'here', { name: 'w1', who: 'me' })).toEqual({
      dt: 'sleeper',
      dt_version: 1,
      site: 'here',
      site_version: 1,
      site_type: 'local',
      site_settings: { baseDir: '/var/lib/cei/here', capacity: 4 },
      params: { args: ['--tag', 'w1'], env: { WHO: 'me' }, slots: 2 },
    });

    const both = { sites: { ...SLEEPER.sites, sim1: { boot_latency_ms: 10 } } };
    expect((await dtrs.updateDt('sleeper', both)).version).toBe(2);
    expect((await dtrs.lookup('sleeper', 'sim1')).params).toEqual({ slots: 1, boot_latency_ms: 10, failure_rate: 0 });
    await dtrs.addDt('other', { sites: { sim1: {} } });
    expect((await dtrs.listDts()).map((d) => `${d.name}@${d.version}`)).toEqual(['other@1', 'sleeper@2']);
    await dtrs.removeDt('other');
    expect((await dtrs.listDts()).map((d) => d.name)).toEqual(['sleeper']);
  });

  it('answers INVALID_ARGUMENT naming the bad field, and stores nothing of the bad input', async () => {
    const before = { dts: await dtrs.listDts(), sites: await dtrs.listSites() };
    expect(await failureOf(dtrs.addDt('bad', { sites: { here: { slots: 0 } } }))).toEqual({
      code: 'INVALID_ARGUMENT',
      details: 'definition.sites.here.slots: must be a whole number >= 1',
    });
    expect(await failureOf(dtrs.addDt('bad name', { sites: { here: {} } }))).toMatchObject({ code: 'INVALID_ARGUMENT', details: expect.stringMatching(/^name: must be 1-63/) });
    expect(await failureOf(dtrs.addSite('s', { type: 'ec2' }))).toEqual({ code: 'INVALID_ARGUMENT', details: 'definition.type: must be one of "local", "sim"' });
    expect(await failureOf(dtrs.addDt('bad', { sites: { sim1: { env: { A: 'b' } } } }))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      details: expect.stringMatching(/^definition\.sites\.sim1: "env" is not a setting of a sim site/),
    });
    expect(await failureOf(unary((o, cb) => dtrs.raw.AddDt({ name: 'bad', definition_json: '{nope' }, o, cb)))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      details: expect.stringMatching(/^definition_json is not valid JSON/),
    });
    expect(await failureOf(unary((o, cb) => dtrs.raw.AddSite({ name: 'bad', definition_json: '' }, o, cb)))).toEqual({
      code: 'INVALID_ARGUMENT',
      details: 'definition_json is required (a JSON object)',
    });
    expect(await failureOf(dtrs.lookup('sleeper', 'here', { who: 'me' }))).toEqual({
      code: 'INVALID_ARGUMENT',
      details: 'lookup of deployable type "sleeper" at site "here": missing variable "name" (used in args[1]); pass it in vars',
    });
    expect(await failureOf(dtrs.lookup('sleeper', 'here', { '9lives': 'x' }))).toMatchObject({ code: 'INVALID_ARGUMENT', details: expect.stringMatching(/^vars\.9lives: bad name/) });
    expect({ dts: await dtrs.listDts(), sites: await dtrs.listSites() }).toEqual(before);
  });

  it('answers NOT_FOUND, ALREADY_EXISTS and FAILED_PRECONDITION with what they concern', async () => {
    expect(await failureOf(dtrs.describeDt('nope'))).toEqual({ code: 'NOT_FOUND', details: 'no deployable type "nope"' });
    expect(await failureOf(dtrs.lookup('nope', 'here'))).toEqual({ code: 'NOT_FOUND', details: 'no deployable type "nope"' });
    expect(await failureOf(dtrs.updateSite('nope', LOCAL_SITE))).toEqual({ code: 'NOT_FOUND', details: 'no site "nope"' });
    expect(await failureOf(dtrs.removeCredentials('sim1'))).toEqual({ code: 'NOT_FOUND', details: 'no credentials for site "sim1"' });
    expect(await failureOf(dtrs.addDt('x', { sites: { ec2: {} } }))).toEqual({ code: 'NOT_FOUND', details: 'deployable type "x" maps site "ec2", which is not registered' });
    expect((await failureOf(dtrs.addSite('here', { type: 'sim' }))).code).toBe('ALREADY_EXISTS');
    expect(await failureOf(dtrs.removeSite('here'))).toMatchObject({ code: 'FAILED_PRECONDITION', details: expect.stringMatching(/used by deployable types sleeper/) });
  });

  it('never gives credentials back in full: describe, list and lookup mask them', async () => {
    const added = await dtrs.addCredentials('here', { access_key: SECRET, pin: '1234' });
    expect(added).toEqual({ created: true, record: { site: 'here', version: 1, credentials: { access_key: '****MPLE', pin: '****' } } });
    const seen = [
      added,
      await dtrs.describeCredentials('here'),
      await dtrs.listCredentials(),
      await dtrs.lookup('sleeper', 'here', { name: 'a', who: 'b' }),
      await dtrs.updateCredentials('here', { access_key: `${SECRET}2`, pin: '1234' }),
    ];
    for (const reply of seen) {
      expect(JSON.stringify(reply)).not.toContain(SECRET);
      expect(JSON.stringify(reply)).not.toContain('1234');
    }
    expect((seen[3] as { credentials?: unknown }).credentials).toEqual({ access_key: '****MPLE', pin: '****' });
    expect((await dtrs.describeSite('here')).has_credentials).toBe(true);
  });

  it('serves health for cei.v1.Dtrs and lists it in reflection', async () => {
    const healthDef = protoLoader.loadSync(resolve(import.meta.dirname, '../../node_modules/grpc-health-check/proto/health/v1/health.proto'), { enums: String });
    const Health = (grpc.loadPackageDefinition(healthDef) as any).grpc.health.v1.Health;
    const health = new Health(node.address, grpc.credentials.createInsecure());
    const reply = await unary<{ status: string }>((o, cb) => health.Check({ service: 'cei.v1.Dtrs' }, o, cb));
    expect(reply.status).toBe('SERVING');
    health.close();

    const reflDef = protoLoader.loadSync(resolve(import.meta.dirname, '../../node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto'), { keepCase: true });
    const Reflection = (grpc.loadPackageDefinition(reflDef) as any).grpc.reflection.v1.ServerReflection;
    const reflection = new Reflection(node.address, grpc.credentials.createInsecure());
    const names = await new Promise<string[]>((res, rej) => {
      const call = reflection.ServerReflectionInfo({ deadline: Date.now() + 10_000 });
      call.on('data', (r: any) => {
        res(r.list_services_response.service.map((s: { name: string }) => s.name));
        call.end();
      });
      call.on('error', rej);
      call.write({ list_services: '*' });
    });
    expect(names).toContain('cei.v1.Dtrs');
    reflection.close();
  });
});

describe('cei dt|site|credentials against a real node', () => {
  let dir: string;
  let files: string;
  let node: NodeProcess;
  const cei = (group: string, ...args: string[]) => runCli([group, '--node', node.address, ...args]);
  const file = (name: string, text: string): string => {
    const path = join(files, name);
    writeFileSync(path, text);
    return path;
  };

  beforeAll(async () => {
    dir = tempDir();
    files = tempDir('cei-dtrs-files-');
    node = await startNode({ dataDir: dir });
  });

  afterAll(async () => {
    if (node) expect(await node.stop()).toBe(0);
    removeDir(dir);
    removeDir(files);
  });

  it('manages sites, types and credentials from YAML and JSON files', async () => {
    const site = file('site.yaml', 'type: local\nsettings:\n  baseDir: /tmp/cei-here\n  capacity: 2\n');
    expect(await cei('site', 'add', 'here', '--file', site)).toMatchObject({ code: 0, stdout: 'added site here version 1\n' });
    expect((await cei('site', 'add', 'here', '--file', site)).stdout).toBe('exists (identical) site here version 1\n');
    expect((await cei('site', 'add', 'sim1', '--type', 'sim')).stdout).toBe('added site sim1 version 1\n');

    const dt = file('dt.yaml', ['description: sleeps', 'sites:', '  here:', '    args: ["--tag", "${name}"]', '    slots: 3', '  sim1: {failure_rate: 0.5}', ''].join('\n'));
    expect((await cei('dt', 'add', 'sleeper', '--file', dt)).stdout).toBe('added dt sleeper version 1\n');
    const json = file('dt.json', JSON.stringify({ sites: { sim1: {} } }));
    expect((await cei('dt', 'add', 'tiny', '--file', json)).stdout).toBe('added dt tiny version 1\n');

    const listed = JSON.parse((await cei('dt', 'list', '--json')).stdout) as Array<{ name: string; definition: unknown }>;
    expect(listed.map((d) => d.name)).toEqual(['sleeper', 'tiny']);
    const table = (await cei('dt', 'list')).stdout.split('\n');
    expect(table[0]).toMatch(/^NAME\s+VERSION\s+SITES\s+DESCRIPTION$/);
    expect(table[1]).toMatch(/^sleeper\s+1\s+here,sim1\s+sleeps$/);
    expect((await cei('dt', 'describe', 'sleeper')).stdout).toMatch(/^name: sleeper\nversion: 1\ndefinition:\n/);
    expect(JSON.parse((await cei('dt', 'describe', 'tiny', '--json')).stdout)).toEqual({ name: 'tiny', version: 1, definition: { sites: { sim1: {} } } });

    const spec = JSON.parse((await cei('dt', 'lookup', 'sleeper', 'here', '--var', 'name=a=b', '--json')).stdout);
    expect(spec).toMatchObject({ site_type: 'local', site_settings: { baseDir: '/tmp/cei-here', capacity: 2 }, params: { args: ['--tag', 'a=b'], env: {}, slots: 3 } });
    expect(spec.credentials).toBeUndefined();

    expect((await cei('dt', 'update', 'tiny', '--file', dt)).stdout).toBe('updated dt tiny version 2\n');
    expect((await cei('dt', 'remove', 'tiny')).stdout).toBe('removed dt tiny\n');

    const sites = JSON.parse((await cei('site', 'list', '--json')).stdout) as Array<{ name: string; used_by: string[] }>;
    expect(sites.map((s) => [s.name, s.used_by])).toEqual([
      ['here', ['sleeper']],
      ['sim1', ['sleeper']],
    ]);
    expect((await cei('site', 'list')).stdout).toMatch(/^NAME\s+TYPE\s+VERSION\s+USED_BY\s+CREDENTIALS\nhere\s+local\s+1\s+sleeper\s+no\n/);
  });

  it('takes credentials from a file or flags and prints them masked only', async () => {
    const creds = file('creds.yaml', `access_key: ${SECRET}\nport: 22\n`);
    const added = await cei('credentials', 'add', 'here', '--file', creds);
    expect(added).toMatchObject({ code: 0, stdout: 'added credentials for site here version 1\n' });
    const outputs = [
      (await cei('credentials', 'describe', 'here')).stdout,
      (await cei('credentials', 'describe', 'here', '--json')).stdout,
      (await cei('credentials', 'list')).stdout,
      (await cei('credentials', 'list', '--json')).stdout,
      (await cei('dt', 'lookup', 'sleeper', 'here', '--var', 'name=x')).stdout,
    ];
    for (const out of outputs) {
      expect(out).toContain('****MPLE');
      expect(out).not.toContain(SECRET);
    }
    expect(JSON.parse(outputs[1]!)).toEqual({ site: 'here', version: 1, credentials: { access_key: '****MPLE', port: '****' } });
    expect((await cei('credentials', 'update', 'sim1', '--set', 'token=t')).stderr).toBe('error: no credentials for site "sim1" (NOT_FOUND)\n');
    expect((await cei('credentials', 'add', 'sim1', '--set', 'token=t')).stdout).toBe('added credentials for site sim1 version 1\n');
    expect((await cei('credentials', 'remove', 'sim1')).stdout).toBe('removed credentials for site sim1\n');
  });

  it('prints the error with its status and exits 1 on bad input', async () => {
    const cases: Array<[string[], string | RegExp]> = [
      [['dt', 'add', 'bad', '--file', file('bad.json', '{"sites": {"here": {"slots": 0}}}')], 'error: definition.sites.here.slots: must be a whole number >= 1 (INVALID_ARGUMENT)\n'],
      [['dt', 'add', 'bad', '--file', file('bad.yaml', 'sites:\n  here: {args: [oops\n')], /^error: --file .*bad\.yaml is not valid YAML or JSON: /],
      [['dt', 'add', 'bad', '--file', file('dup.yaml', 'sites: {}\nsites: {}\n')], /^error: --file .*dup\.yaml is not valid YAML or JSON: Map keys must be unique/],
      [['dt', 'add', 'bad', '--file', file('empty.yaml', '')], /^error: --file .*empty\.yaml is empty\n$/],
      [['dt', 'add', 'bad', '--file', join(files, 'missing.yaml')], /^error: --file .*missing\.yaml: no such file\n$/],
      [['dt', 'lookup', 'sleeper', 'here'], /^error: lookup of deployable type "sleeper" at site "here": missing variable "name" .*\(INVALID_ARGUMENT\)\n$/],
      [['dt', 'lookup', 'sleeper', 'here', '--var', 'name'], 'error: --var "name": expected NAME=VALUE\n'],
      [['dt', 'describe', 'nope'], 'error: no deployable type "nope" (NOT_FOUND)\n'],
      [['site', 'remove', 'here'], /^error: site "here" is used by deployable types sleeper; .*\(FAILED_PRECONDITION\)\n$/],
      [['site', 'add', 'x'], 'error: give the site with --file <path> (YAML or JSON) or --type local|sim\n'],
      [['credentials', 'add', 'nope', '--set', 'k=v'], 'error: no site "nope" (NOT_FOUND)\n'],
    ];
    for (const [args, want] of cases) {
      const r = await cei(args[0]!, ...args.slice(1));
      expect(r.code, args.join(' ')).toBe(1);
      if (typeof want === 'string') expect(r.stderr).toBe(want);
      else expect(r.stderr).toMatch(want);
    }
    expect((await cei('dt', 'list', '--json')).stdout).not.toContain('"bad"');
  });

  it('documents the commands', async () => {
    const top = await runCli(['--help']);
    for (const cmd of ['dt', 'site', 'credentials']) expect(top.stdout).toContain(cmd);
    for (const [group, subs] of [
      ['dt', ['add', 'describe', 'list', 'update', 'remove', 'lookup']],
      ['site', ['add', 'describe', 'list', 'update', 'remove']],
      ['credentials', ['add', 'describe', 'list', 'update', 'remove']],
    ] as const) {
      const help = await runCli([group, '--help']);
      expect(help.code).toBe(0);
      for (const sub of subs) expect(help.stdout).toContain(sub);
    }
    expect((await runCli(['dt', 'lookup', '--help'])).stdout).toContain('--var');
  });
});

describe('the registry in a 3-node cluster', () => {
  const cluster = new TestCluster([{ role: 'bootstrap' }, { role: 'control' }, { role: 'control' }]);
  const clients: DtrsClient[] = [];
  const dtrsAt = (i: number): DtrsClient => (clients[i] ??= new DtrsClient(cluster.address(i)));

  beforeAll(async () => {
    await cluster.startAll();
  });

  afterAll(async () => {
    for (const c of clients) c?.close();
    await cluster.destroy();
  });

  it('answers the same from every node, and keeps answering after its owner is SIGKILLed', async () => {
    await dtrsAt(1).addSite('here', LOCAL_SITE);
    await dtrsAt(2).addDt('sleeper', SLEEPER);
    await dtrsAt(0).addCredentials('here', { key: SECRET });
    const specs = await Promise.all([0, 1, 2].map((i) => dtrsAt(i).lookup('sleeper', 'here', { name: 'n', who: 'w' })));
    for (const s of specs) expect(s).toEqual(specs[0]);

    const owner = (await cluster.client(0).describe(DTRS_REF)).node;
    const victim = cluster.ids.indexOf(owner);
    const survivor = (victim + 1) % 3;
    await cluster.kill(victim, 'SIGKILL');
    clients[victim]?.close();
    expect(await dtrsAt(survivor).lookup('sleeper', 'here', { name: 'n', who: 'w' }, 20_000)).toEqual(specs[0]);
    expect((await dtrsAt(survivor).updateDt('sleeper', { sites: { here: { slots: 5 } } }, 20_000)).version).toBe(2);
    expect((await cluster.client(survivor).describe(DTRS_REF)).node).not.toBe(owner);
    const other = [0, 1, 2].find((i) => i !== victim && i !== survivor)!;
    expect((await dtrsAt(other).describeDt('sleeper', 20_000)).version).toBe(2);
  });
});
