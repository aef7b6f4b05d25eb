import { describe, expect, it } from 'vitest';
import { parsePlan } from '../../../src/plans/load.js';
import { PlanError, type CommandService, type NodeService, type RemoteService } from '../../../src/plans/plan.js';
import { addressError, resolveService, resolveSystem, staticAddress, substitute } from '../../../src/plans/resolve.js';

const PLAN = `name: p
levels:
  - name: seed
    services:
      - name: bootstrap
        node: {role: bootstrap}
  - name: control
    services:
      - name: control
        count: 2
        node: {role: control, args: [--log-level, debug]}
  - name: feed
    services:
      - name: feeder
        run: "feed --to \${control.address} --dir \${seed.bootstrap.data_dir} --literal '$\${HOME}'"
        env: {TARGET: "\${control-1.address}"}
sites:
  local:
    type: local
    settings: {data_dir: "\${run.dir}/workers", seed: "\${bootstrap.address}"}
deployable_types:
  w:
    sites:
      local: {args: [--tag, "\${epum_domain}", "$\${x}"]}
`;

const RUN = { dir: '/runs/r1', name: 'r1' };
const BOOTED = {
  run: RUN,
  services: {
    bootstrap: { address: '127.0.0.1:40001', data_dir: '/runs/r1/bootstrap' },
    'control-0': { address: '127.0.0.1:40002' },
    'control-1': { address: '127.0.0.1:40003' },
  },
};

describe('resolveService: what only earlier levels know', () => {
  const plan = parsePlan(PLAN, 'p.yaml');

  it('fills a port-0 node address into the next level\'s join and the run directory', () => {
    const c1 = resolveService(plan, 1, 'control-1', BOOTED) as NodeService;
    expect(c1).toMatchObject({ name: 'control-1', join: ['127.0.0.1:40001'], data_dir: '/runs/r1/control-1', args: ['--log-level', 'debug'] });
  });

  it('fills a counted service\'s list, single copies, and turns $${ into a literal ${', () => {
    const feeder = resolveService(plan, 2, 'feeder', BOOTED) as CommandService;
    expect(feeder.run).toBe("feed --to 127.0.0.1:40002,127.0.0.1:40003 --dir /runs/r1/bootstrap --literal '${HOME}'");
    expect(feeder.env).toEqual({ TARGET: '127.0.0.1:40003' });
  });

  it('splits a joined list of seeds into one entry per address', () => {
    const levels = PLAN.slice(0, PLAN.indexOf('sites:'));
    const p = parsePlan(`${levels}  - name: more\n    services:\n      - name: w\n        node: {role: worker, join: ["\${control.address}"]}\n`, 'p.yaml');
    const w = resolveService(p, 3, 'w', BOOTED) as NodeService;
    expect(w.join).toEqual(['127.0.0.1:40002', '127.0.0.1:40003']);
  });

  it('an attribute the launcher did not report is an error naming the service', () => {
    let err: unknown;
    try {
      resolveService(plan, 1, 'control-0', { run: RUN, services: {} });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PlanError);
    expect((err as PlanError).message).toMatch(/^p\.yaml:9:\d+: levels\[1\]\.services\[0\]\.join\[0\]: \$\{seed\.bootstrap\.address\}: service bootstrap has no address yet/);
  });

  it('a reported address that is not HOST:PORT is refused', () => {
    const bad = { run: RUN, services: { bootstrap: { address: 'nowhere' } } };
    expect(() => resolveService(plan, 1, 'control-0', bad)).toThrow(/node\.join\[0\]: "nowhere" is not HOST:PORT/);
  });

  it('without the run, ${run.dir} cannot be filled', () => {
    expect(() => resolveService(plan, 0, 'bootstrap', { services: {} })).toThrow(/data_dir: \$\{run\.dir\}: the run's dir was not given/);
  });

  it('an unknown service of a level is an error', () => {
    expect(() => resolveService(plan, 0, 'control-0', BOOTED)).toThrow(/no service control-0 in level 0/);
  });

  it('an address service resolves to itself', () => {
    const p = parsePlan(`name: p\nlevels:\n  - services:\n      - name: far\n        address: "\${vars.seed}"\n`, 'p.yaml', { vars: { seed: '10.0.0.1:7000' } });
    expect((resolveService(p, 0, 'far', { services: {} }) as RemoteService).address).toBe('10.0.0.1:7000');
  });
});

describe('resolveSystem', () => {
  it('fills run and service attributes, and keeps the registry\'s templates in deployable types', () => {
    const plan = parsePlan(PLAN, 'p.yaml');
    const system = resolveSystem(plan, BOOTED);
    expect(system.sites.local?.settings).toEqual({ data_dir: '/runs/r1/workers', seed: '127.0.0.1:40001' });
    expect(system.deployable_types.w?.sites.local?.args).toEqual(['--tag', '${epum_domain}', '$${x}']);
  });

  it('names the object when an attribute is missing', () => {
    const plan = parsePlan(PLAN, 'p.yaml');
    expect(() => resolveSystem(plan, { run: RUN, services: {} })).toThrow(/^p\.yaml:18:3: sites\.local\.settings\.seed: .*service bootstrap has no address/);
  });
});

describe('templates and addresses', () => {
  it('a whole-string reference keeps the value\'s type; text joins as text', () => {
    expect(substitute('${globals.n}', () => ({ value: 3 })).value).toBe(3);
    expect(substitute('n=${globals.n}', () => ({ value: 3 })).value).toBe('n=3');
    expect(substitute('$${a.b} ${a.b}', () => ({ value: 'x' })).value).toBe('$${a.b} x');
  });

  it('HOST:PORT, port 0 only to listen; a static address only for a fixed, non-wildcard listen', () => {
    expect(addressError('127.0.0.1:0', true)).toBeUndefined();
    expect(addressError('[::1]:7000', false)).toBeUndefined();
    expect(addressError('host:0', false)).toMatch(/port 0/);
    expect(staticAddress('127.0.0.1:7000')).toBe('127.0.0.1:7000');
    expect(staticAddress('127.0.0.1:0')).toBeUndefined();
    expect(staticAddress('0.0.0.0:7000')).toBeUndefined();
  });
});
