import { describe, expect, it } from 'vitest';
import { loadPlan, parsePlan, type LoadOptions } from '../../../src/plans/load.js';
import { PlanError, type NodeService, type CommandService } from '../../../src/plans/plan.js';

const FILE = 'bad.yaml';

/** The PlanError `text` gives (fails the test when it loads). */
function problemsOf(text: string, options: LoadOptions = {}): PlanError {
  try {
    parsePlan(text, FILE, options);
  } catch (err) {
    expect(err).toBeInstanceOf(PlanError);
    return err as PlanError;
  }
  throw new Error('the plan loaded');
}

const SEED = `name: p
levels:
  - name: seed
    services:
      - name: bootstrap
        node: {role: bootstrap}
`;

interface BadCase {
  what: string;
  text: string;
  line: number;
  path: string;
  reason: RegExp;
  options?: LoadOptions;
}

const BAD: BadCase[] = [
  {
    what: 'an unknown key in a service',
    text: `${SEED}      - name: other\n        nmae: x\n        node: {role: control}\n`,
    line: 8,
    path: 'levels[0].services[1].nmae',
    reason: /unknown field/,
  },
  {
    what: 'an unknown key at the top',
    text: `${SEED}level: []\n`,
    line: 7,
    path: 'level',
    reason: /unknown field/,
  },
  {
    what: 'an unknown key in a node',
    text: `name: p\nlevels:\n  - services:\n      - name: a\n        node:\n          role: bootstrap\n          replica: 2\n`,
    line: 7,
    path: 'levels[0].services[0].node.replica',
    reason: /unknown field/,
  },
  {
    what: 'a forward reference (a later level)',
    text: `name: p
levels:
  - name: seed
    services:
      - name: bootstrap
        node: {role: bootstrap, join: ["\${control.c.address}"]}
  - name: control
    services:
      - name: c
        node: {role: control}
`,
    line: 6,
    path: 'levels[0].services[0].node.join[0]',
    reason: /\$\{control\.c\.address\}.*later level/,
  },
  {
    what: 'a reference to a service of the same level (a cycle within the level)',
    text: `${SEED}      - name: feeder\n        run: "feed --to \${bootstrap.address}"\n`,
    line: 8,
    path: 'levels[0].services[1].run',
    reason: /same level.*earlier levels only/,
  },
  {
    what: 'a reference to an unknown level',
    text: `${SEED}  - services:\n      - name: f\n        run: "feed \${nowhere.bootstrap.address}"\n`,
    line: 9,
    path: 'levels[1].services[0].run',
    reason: /unknown level "nowhere".*seed/,
  },
  {
    what: 'a reference to an unknown service',
    text: `${SEED}  - services:\n      - name: f\n        run: "feed \${ghost.address}"\n`,
    line: 9,
    path: 'levels[1].services[0].run',
    reason: /unknown service "ghost".*bootstrap/,
  },
  {
    what: 'a reference to an unknown service of a known level',
    text: `${SEED}  - services:\n      - name: f\n        run: "feed \${seed.ghost.address}"\n`,
    line: 9,
    path: 'levels[1].services[0].run',
    reason: /level seed has no service "ghost"/,
  },
  {
    what: 'an attribute a service does not have',
    text: `${SEED}  - services:\n      - name: f\n        run: "feed \${bootstrap.port}"\n`,
    line: 9,
    path: 'levels[1].services[0].run',
    reason: /no attribute "port".*address/,
  },
  {
    what: 'a service without a name',
    text: `name: p\nlevels:\n  - services:\n      - node: {role: bootstrap}\n`,
    line: 4,
    path: 'levels[0].services[0].name',
    reason: /required field is missing/,
  },
  {
    what: 'a node without a role',
    text: `name: p\nlevels:\n  - services:\n      - name: a\n        node: {listen: "127.0.0.1:0"}\n`,
    line: 5,
    path: 'levels[0].services[0].node.role',
    reason: /required field is missing/,
  },
  {
    what: 'a plan without levels',
    text: `name: p\nglobals: {a: 1}\n`,
    line: 1,
    path: 'levels',
    reason: /required field is missing/,
  },
  {
    what: 'a service that is neither node, address nor run',
    text: `name: p\nlevels:\n  - services:\n      - name: a\n        ready: "true"\n`,
    line: 4,
    path: 'levels[0].services[0]',
    reason: /missing node, address or run/,
  },
  {
    what: 'a service that is two kinds at once',
    text: `name: p\nlevels:\n  - services:\n      - name: a\n        node: {role: bootstrap}\n        run: "sleep 1"\n`,
    line: 6,
    path: 'levels[0].services[0].run',
    reason: /exactly one of node, address, run/,
  },
  {
    what: 'a listen address that is not HOST:PORT',
    text: `name: p\nlevels:\n  - services:\n      - name: a\n        node: {role: bootstrap, listen: localhost}\n`,
    line: 5,
    path: 'levels[0].services[0].node.listen',
    reason: /"localhost" is not HOST:PORT/,
  },
  {
    what: 'a port above 65535',
    text: `name: p\nlevels:\n  - services:\n      - name: a\n        node: {role: bootstrap, listen: "127.0.0.1:70000"}\n`,
    line: 5,
    path: 'levels[0].services[0].node.listen',
    reason: /port must be at most 65535/,
  },
  {
    what: 'port 0 for a node to verify',
    text: `name: p\nlevels:\n  - services:\n      - name: a\n        address: "10.0.0.1:0"\n`,
    line: 5,
    path: 'levels[0].services[0].address',
    reason: /port 0 is only for listen/,
  },
  {
    what: 'a bad join address',
    text: `${SEED}  - services:\n      - name: c\n        node: {role: control, join: ["127.0.0.1:7000", "nohost"]}\n`,
    line: 9,
    path: 'levels[1].services[0].node.join[1]',
    reason: /"nohost" is not HOST:PORT/,
  },
  {
    what: 'count 0',
    text: `${SEED}  - services:\n      - name: c\n        count: 0\n        node: {role: control}\n`,
    line: 9,
    path: 'levels[1].services[0].count',
    reason: /whole number >= 1/,
  },
  {
    what: 'a fractional count',
    text: `${SEED}  - services:\n      - name: c\n        count: 1.5\n        node: {role: control}\n`,
    line: 9,
    path: 'levels[1].services[0].count',
    reason: /whole number >= 1/,
  },
  {
    what: 'a count that is not a number',
    text: `${SEED}  - services:\n      - name: c\n        count: many\n        node: {role: control}\n`,
    line: 9,
    path: 'levels[1].services[0].count',
    reason: /whole number >= 1/,
  },
  {
    what: 'two services with one name in different levels',
    text: `${SEED}  - services:\n      - name: bootstrap\n        node: {role: control}\n`,
    line: 8,
    path: 'levels[1].services[0].name',
    reason: /duplicate service name "bootstrap": already used at bad\.yaml:5:/,
  },
  {
    what: 'a name that count expansion makes twice',
    text: `${SEED}  - services:\n      - name: web-1\n        run: "true"\n      - name: web\n        count: 2\n        run: "true"\n`,
    line: 11,
    path: 'levels[1].services[1].count',
    reason: /duplicate service name "web-1" \(made by count: 2\): already used at bad\.yaml:8:/,
  },
  {
    what: 'two levels with one name',
    text: `${SEED}  - name: seed\n    services:\n      - name: c\n        node: {role: control}\n`,
    line: 7,
    path: 'levels[1].name',
    reason: /duplicate level name "seed"/,
  },
  {
    what: 'a bad role',
    text: `name: p\nlevels:\n  - services:\n      - name: a\n        node: {role: leader}\n`,
    line: 5,
    path: 'levels[0].services[0].node.role',
    reason: /must be one of bootstrap, control, worker/,
  },
  {
    what: 'a reserved service name',
    text: `name: p\nlevels:\n  - services:\n      - name: env\n        run: "true"\n`,
    line: 4,
    path: 'levels[0].services[0].name',
    reason: /must not be one of globals/,
  },
  {
    what: 'a domain whose config fails the registry schema',
    text: `${SEED}domains:\n  sleeper:\n    config:\n      engine: npreserving\n      tick_seconds: 0\n`,
    line: 11,
    path: 'domains.sleeper.config.tick_seconds',
    reason: /at least 0\.01 seconds/,
  },
  {
    what: 'a domain whose engine_conf its built-in engine refuses',
    text: `${SEED}domains:\n  sleeper:\n    config:\n      engine: npreserving\n      engine_conf: {preserve_n: -1, deployable_type: sleeper, site: local}\n`,
    line: 11,
    path: 'domains.sleeper.config.engine_conf',
    reason: /preserve_n/,
  },
  {
    what: 'a domain with neither definition nor engine',
    text: `${SEED}domains:\n  sleeper:\n    config: {engine_conf: {preserve_n: 1}}\n`,
    line: 9,
    path: 'domains.sleeper.config.engine',
    reason: /give a definition, or a config that names its engine/,
  },
  {
    what: 'an unknown field in a domain',
    text: `${SEED}domains:\n  sleeper:\n    definition: base\n    enigne: npreserving\n`,
    line: 10,
    path: 'domains.sleeper.enigne',
    reason: /unknown field/,
  },
  {
    what: 'a site of an unknown type',
    text: `${SEED}sites:\n  cloud:\n    type: ec2\n`,
    line: 9,
    path: 'sites.cloud.type',
    reason: /must be one of "local", "sim"/,
  },
  {
    what: 'a deployable type that maps no site',
    text: `${SEED}deployable_types:\n  sleeper:\n    sites: {}\n`,
    line: 9,
    path: 'deployable_types.sleeper.sites',
    reason: /at least one site/,
  },
  {
    what: 'a deployable type with a bad registry template',
    text: `${SEED}deployable_types:\n  w:\n    sites:\n      local: {args: ["\${1bad}"]}\n`,
    line: 10,
    path: 'deployable_types.w.sites.local.args[0]',
    reason: /is not a reference|bad template/,
  },
  {
    what: 'a process definition without a type',
    text: `${SEED}process_definitions:\n  avg:\n    executable: {}\n`,
    line: 8,
    path: 'process_definitions.avg.type',
    reason: /required field is missing/,
  },
  {
    what: 'a process with a bad queueing mode',
    text: `${SEED}processes:\n  p1:\n    definitionId: avg\n    queueingMode: SOMETIMES\n`,
    line: 10,
    path: 'processes.p1.queueingMode',
    reason: /must be one of NEVER/,
  },
  {
    what: 'a process that repeats its key as upid',
    text: `${SEED}processes:\n  p1:\n    upid: p2\n    definitionId: avg\n`,
    line: 9,
    path: 'processes.p1.upid',
    reason: /the upid is the key/,
  },
  {
    what: 'a stream with a bad retention',
    text: `${SEED}streams:\n  sensor:\n    retention: {maxCount: 0}\n`,
    line: 9,
    path: 'streams.sensor.retention.maxCount',
    reason: /whole number >= 1/,
  },
  {
    what: 'a stream with a bad name',
    text: `${SEED}streams:\n  "-sensor": {}\n`,
    line: 8,
    path: 'streams.-sensor',
    reason: /bad name/,
  },
  {
    what: 'an unknown global',
    text: `name: p\nglobals: {host: 127.0.0.1}\nlevels:\n  - services:\n      - name: a\n        node: {role: bootstrap, listen: "\${globals.hots}:0"}\n`,
    line: 6,
    path: 'levels[0].services[0].node.listen',
    reason: /unknown global "hots" \(globals: host\)/,
  },
  {
    what: 'an environment variable that is not set',
    text: `name: p\nlevels:\n  - services:\n      - name: a\n        node: {role: bootstrap, data_dir: "\${env.CEI_NOPE}/a"}\n`,
    line: 5,
    path: 'levels[0].services[0].node.data_dir',
    reason: /environment variable CEI_NOPE is not set/,
  },
  {
    what: 'a --var that was not given',
    text: `name: p\nlevels:\n  - services:\n      - name: a\n        count: \${vars.n}\n        run: "true"\n`,
    line: 5,
    path: 'levels[0].services[0].count',
    reason: /no --var n=\.\.\. was given/,
  },
  {
    what: 'a global that uses another global',
    text: `name: p\nglobals:\n  a: x\n  b: "\${globals.a}"\nlevels:\n  - services:\n      - name: a\n        run: "true"\n`,
    line: 4,
    path: 'globals.b',
    reason: /globals may use/,
  },
  {
    what: 'count.index outside a counted service',
    text: `name: p\nlevels:\n  - services:\n      - name: a\n        run: "echo \${count.index}"\n`,
    line: 5,
    path: 'levels[0].services[0].run',
    reason: /only a service with count has an index/,
  },
  {
    what: 'a one-part reference outside deployable types',
    text: `name: p\nlevels:\n  - services:\n      - name: a\n        run: "echo \${HOME}"\n`,
    line: 5,
    path: 'levels[0].services[0].run',
    reason: /not a plan reference.*\$\$\{|not a plan reference/,
  },
  {
    what: 'an unterminated reference',
    text: `name: p\nlevels:\n  - services:\n      - name: a\n        run: "echo \${globals.x"\n`,
    line: 5,
    path: 'levels[0].services[0].run',
    reason: /unterminated/,
  },
  {
    what: 'duplicate keys in YAML',
    text: `name: p\nname: q\nlevels: []\n`,
    line: 2,
    path: '',
    reason: /YAML: Map keys must be unique/,
  },
  {
    what: 'a YAML syntax error',
    text: `name: p\nlevels:\n  - services: [\n`,
    line: 4,
    path: '',
    reason: /YAML: /,
  },
];

describe('bad plans name the file, line and field', () => {
  it.each(BAD)('$what', ({ text, line, path, reason, options }) => {
    const err = problemsOf(text, options);
    const found = err.problems.find((p) => p.path === path && reason.test(p.reason));
    expect(found, `no problem at ${path} matching ${reason}; got:\n${err.message}`).toBeDefined();
    expect(found!.line).toBe(line);
    expect(err.message).toContain(`${FILE}:${line}:${found!.col}: ${path ? `${path}: ` : ''}`);
    expect(err.code).toBe('INVALID_ARGUMENT');
  });

  it('reports every problem of a plan at once, in file order', () => {
    const err = problemsOf(`name: p\nlevels:\n  - services:\n      - name: a\n        node: {role: leader, listen: x}\n      - name: b\n        count: 0\n        run: "true"\n`);
    expect(err.problems.map((p) => p.path)).toEqual(['levels[0].services[0].node.role', 'levels[0].services[1].count']);
  });

  it('a YAML syntax error in a file names the file and its line', async () => {
    const err = await loadPlan('test/support/plans/syntax-error.yaml').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PlanError);
    expect((err as PlanError).message).toMatch(/^test\/support\/plans\/syntax-error\.yaml:\d+:\d+: YAML: /);
  });

  it('a file that cannot be read is a PlanError naming it', async () => {
    const err = await loadPlan('test/support/plans/nope.yaml').catch((e: unknown) => e);
    expect((err as PlanError).message).toMatch(/^test\/support\/plans\/nope\.yaml:1:1: cannot read the plan/);
  });
});

describe('good plans', () => {
  it('plans/local.yaml: a bootstrap node, two control nodes, the sleeper domain', async () => {
    const plan = await loadPlan('plans/local.yaml');
    expect(plan.name).toBe('local');
    expect(plan.levels.map((l) => [l.name, l.services.map((s) => s.name)])).toEqual([
      ['seed', ['bootstrap']],
      ['control', ['control-0', 'control-1']],
    ]);
    const [bootstrap] = plan.levels[0]!.services as NodeService[];
    expect(bootstrap).toMatchObject({ kind: 'node', role: 'bootstrap', listen: '127.0.0.1:0', data_dir: '${run.dir}/bootstrap', join: [], replicas: 2 });
    for (const c of plan.levels[1]!.services as NodeService[]) {
      expect(c).toMatchObject({ kind: 'node', role: 'control', join: ['${seed.bootstrap.address}'] });
    }
    expect(plan.system.sites.local).toEqual({ type: 'local', description: 'worker processes on this machine', settings: { data_dir: '${run.dir}/sleepers' } });
    expect(plan.system.deployable_types.sleeper?.sites).toEqual({ local: {} });
    expect(plan.system.domains.sleeper).toEqual({ config: { engine: 'npreserving', engine_conf: { preserve_n: 2, deployable_type: 'sleeper', site: 'local' } } });
  });

  it('plans/transform.yaml: a worker engine domain, a fed sensor stream and a window-average process', async () => {
    const plan = await loadPlan('plans/transform.yaml');
    const feeder = plan.levels[2]!.services[0] as CommandService;
    expect(feeder.kind).toBe('command');
    expect(feeder.run).toContain('stream publish sensor');
    expect(feeder.run).toContain('--node ${control.control-0.address}');
    expect(feeder.run).toContain('sleep 1;');
    expect(feeder.ready).toContain('stream describe sensor');
    expect(plan.system.domains.pd_default?.config?.engine).toBe('npreserving');
    expect(Object.keys(plan.system.streams)).toEqual(['sensor', 'sensor-avg']);
    expect(plan.system.process_definitions['window-average']).toMatchObject({ type: 'window-average', executable: {} });
    expect(plan.system.processes['sensor-average']).toEqual({
      definitionId: 'window-average',
      configuration: { inputs: ['sensor'], output: 'sensor-avg', window: 10 },
    });
  });

  it('the run directory is filled at load when given', async () => {
    const plan = await loadPlan('plans/local.yaml', { run: { dir: '/tmp/run1', name: 'run1' } });
    expect((plan.levels[1]!.services[1] as NodeService).data_dir).toBe('/tmp/run1/control-1');
    expect(plan.system.sites.local?.settings).toEqual({ data_dir: '/tmp/run1/sleepers' });
  });

  it('count expands to name-0 .. name-N-1 with ${count.index}, and later levels see each copy', () => {
    const plan = parsePlan(
      `name: p
levels:
  - name: seed
    services:
      - name: n
        count: 3
        node: {role: bootstrap, listen: "127.0.0.1:700\${count.index}", data_dir: "/d/n\${count.index}"}
  - services:
      - name: c
        node: {role: control}
      - name: one
        run: "ping \${seed.n-1.address} \${n-2.data_dir}"
      - name: all
        run: "ping \${n.address}"
`,
      'p.yaml',
    );
    const seeds = plan.levels[0]!.services as NodeService[];
    expect(seeds.map((s) => [s.name, s.base, s.index, s.listen, s.data_dir])).toEqual([
      ['n-0', 'n', 0, '127.0.0.1:7000', '/d/n0'],
      ['n-1', 'n', 1, '127.0.0.1:7001', '/d/n1'],
      ['n-2', 'n', 2, '127.0.0.1:7002', '/d/n2'],
    ]);
    // Copies of one service are one level: they join nothing of their own level.
    expect(seeds.map((s) => s.join)).toEqual([[], [], []]);
    const [c, one, all] = plan.levels[1]!.services as [NodeService, CommandService, CommandService];
    expect(c.join).toEqual(['127.0.0.1:7000', '127.0.0.1:7001', '127.0.0.1:7002']);
    expect(one.run).toBe('ping 127.0.0.1:7001 /d/n2');
    expect(all.run).toBe('ping 127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002');
  });

  it('substitutes globals (keeping their type), env and vars', () => {
    const plan = parsePlan(
      `name: p
globals:
  host: "\${vars.host}"
  replicas: 3
  root: "\${env.CEI_ROOT}/data"
levels:
  - services:
      - name: a
        count: "\${vars.n}"
        node:
          role: bootstrap
          listen: "\${globals.host}:0"
          replicas: "\${globals.replicas}"
          data_dir: "\${globals.root}/a\${count.index}"
          args: [--log-level, "\${vars.level}"]
`,
      'p.yaml',
      { vars: { host: '10.1.2.3', n: '2', level: 'debug' }, env: { CEI_ROOT: '/srv' } },
    );
    expect(plan.globals).toEqual({ host: '10.1.2.3', replicas: 3, root: '/srv/data' });
    const [a0, a1] = plan.levels[0]!.services as NodeService[];
    expect(a0).toMatchObject({ name: 'a-0', listen: '10.1.2.3:0', replicas: 3, data_dir: '/srv/data/a0', args: ['--log-level', 'debug'] });
    expect(a1!.data_dir).toBe('/srv/data/a1');
  });

  it('join defaults to every node of the earlier levels, and an explicit join wins', () => {
    const plan = parsePlan(
      `name: p
levels:
  - services:
      - name: b
        node: {role: bootstrap, listen: "127.0.0.1:7100"}
      - name: far
        address: "10.0.0.9:7000"
      - name: side
        run: "true"
  - services:
      - name: c
        node: {role: control}
  - services:
      - name: w
        node: {role: worker, slots: 4, engine_type: big}
      - name: lone
        node: {role: bootstrap, join: []}
`,
      'p.yaml',
    );
    expect((plan.levels[1]!.services[0] as NodeService).join).toEqual(['127.0.0.1:7100', '10.0.0.9:7000']);
    const [w, lone] = plan.levels[2]!.services as NodeService[];
    expect(w!.join).toEqual(['127.0.0.1:7100', '10.0.0.9:7000', '${level2.c.address}']);
    expect(w).toMatchObject({ slots: 4, engine_type: 'big' });
    expect(lone!.join).toEqual([]);
  });

  it('defaults: level names, listen, timeout, retries, continue_on_error', async () => {
    const plan = await loadPlan('test/support/plans/minimal.yaml');
    expect(plan.levels[0]!.name).toBe('level1');
    expect(plan.levels[0]!.services[0]).toMatchObject({ listen: '127.0.0.1:7000', timeout: 60, retries: 0, continue_on_error: false, source: { line: 5, path: 'levels[0].services[0]' } });
  });

  it('keeps the registry\'s own templates in deployable types, fills plan references there', () => {
    const plan = parsePlan(
      `${SEED}deployable_types:
  w:
    sites:
      local:
        args: [--join, "\${bootstrap.address}", --tag, "\${epum_domain}", "$\${literal}"]
        env: {ROOT: "\${bootstrap.data_dir}"}
`,
      'p.yaml',
      { run: { dir: '/r', name: 'r' } },
    );
    expect(plan.system.deployable_types.w?.sites.local).toEqual({
      args: ['--join', '${seed.bootstrap.address}', '--tag', '${epum_domain}', '$${literal}'],
      env: { ROOT: '/r/bootstrap' },
    });
  });
});
