// src/bpf: BpfObject, one compiled BPF object (bpf-c/<hook>.c -> build/bpf/<hook>.o):
// open it with a pin directory (maps marked LIBBPF_PIN_BY_NAME are adopted from there when
// present, so a restarted daemon keeps its state), set .rodata knobs, load, and hand out
// its maps and programs. Handles from a closed object throw EBADF instead of using stale fds.

import { Btf } from './btf.js';
import { typeCodec } from './codec.js';
import { bpfError, native, wrapError } from './errors.js';
import { BpfMap } from './map.js';
import { addon, type RawObject, type RawObjectMap, type RawObjectProgram } from './native.js';
import { BpfProgram } from './program.js';

export type ConstValue = number | bigint | boolean | Buffer;

export interface OpenOptions {
  /** pin root for LIBBPF_PIN_BY_NAME maps; must exist. Without it libbpf uses /sys/fs/bpf. */
  pinDir?: string;
  /** .rodata constants by variable name, set before load */
  consts?: Record<string, ConstValue>;
  /** max_entries by map name, set before load (maps the object does not declare are skipped) */
  maxEntries?: Record<string, number>;
}

export class BpfObject {
  private readonly maps = new Map<string, BpfMap>();
  private readonly programs = new Map<string, BpfProgram>();
  private btfCache: Btf | undefined;

  private constructor(
    private readonly raw: RawObject,
    readonly path: string,
  ) {}

  static open(path: string, opts: OpenOptions = {}): BpfObject {
    const obj = new BpfObject(
      native(() => addon.Object.open(path, opts.pinDir)),
      path,
    );
    try {
      for (const [name, value] of Object.entries(opts.consts ?? {})) obj.setConst(name, value);
      if (opts.maxEntries) {
        const declared = new Set(obj.mapDefs().map((m) => m.name));
        for (const [name, n] of Object.entries(opts.maxEntries)) if (declared.has(name)) obj.setMaxEntries(name, n);
      }
    } catch (e) {
      obj.close();
      throw e;
    }
    return obj;
  }

  /** open() + load(); the object is closed again if loading fails. */
  static load(path: string, opts: OpenOptions = {}): BpfObject {
    const obj = BpfObject.open(path, opts);
    try {
      obj.load();
    } catch (e) {
      obj.close();
      throw e;
    }
    return obj;
  }

  /**
   * open() + loadAsync(): the verifier runs on a worker thread while this one goes on;
   * the object is closed again if loading fails.
   */
  static async loadAsync(path: string, opts: OpenOptions = {}): Promise<BpfObject> {
    const obj = BpfObject.open(path, opts);
    try {
      await obj.loadAsync();
    } catch (e) {
      obj.close();
      throw e;
    }
    return obj;
  }

  get loaded(): boolean {
    return this.raw.loaded;
  }
  get closed(): boolean {
    return this.raw.closed;
  }

  /** Sets a `const volatile` .rodata variable; numbers are encoded by the variable's BTF type. */
  setConst(name: string, value: ConstValue): void {
    let bytes: Buffer;
    if (Buffer.isBuffer(value)) bytes = value;
    else {
      const v = this.btf()
        .datasec('.rodata')
        .find((x) => x.name === name);
      if (!v) throw bpfError('ENOENT', 2, `set const '${name}' in ${this.path}`, 'no .rodata variable of that name');
      bytes = typeCodec(v.type).encode(typeof value === 'boolean' ? Number(value) : value);
    }
    native(() => this.raw.setConst(name, bytes));
  }

  /** A map's max_entries before load (libbpf then creates it, or adopts a pin of that size). */
  setMaxEntries(map: string, maxEntries: number): void {
    native(() => this.raw.setMaxEntries(map, maxEntries));
  }

  load(): void {
    native(() => this.raw.load());
  }

  /** load() off the main thread (the kernel's verifier can take hundreds of ms). */
  async loadAsync(): Promise<void> {
    try {
      await native(() => this.raw.loadAsync());
    } catch (e) {
      throw wrapError(e);
    }
  }

  /** Map definitions (valid before load), internal .rodata/.bss maps included. */
  mapDefs(): RawObjectMap[] {
    return native(() => this.raw.maps());
  }
  programDefs(): RawObjectProgram[] {
    return native(() => this.raw.programs());
  }
  /** Names of the object's own maps (internal .rodata/.data/.bss maps left out). */
  mapNames(): string[] {
    return this.mapDefs()
      .filter((m) => !m.internal)
      .map((m) => m.name);
  }
  programNames(): string[] {
    return this.programDefs().map((p) => p.name);
  }

  private assertOpen(what: string): void {
    if (this.closed) throw bpfError('EBADF', 9, `find ${what} in ${this.path}`, 'object was closed');
  }

  map(name: string): BpfMap {
    this.assertOpen(`map '${name}'`);
    let m = this.maps.get(name);
    if (!m) {
      m = new BpfMap(
        native(() => this.raw.map(name)),
        () => this.btf(),
      );
      this.maps.set(name, m);
    }
    return m;
  }

  program(name: string): BpfProgram {
    this.assertOpen(`program '${name}'`);
    let p = this.programs.get(name);
    if (!p) {
      p = new BpfProgram(native(() => this.raw.program(name)));
      this.programs.set(name, p);
    }
    return p;
  }

  btf(): Btf {
    this.assertOpen('BTF');
    return (this.btfCache ??= new Btf(
      native(() => this.raw.btf()),
      `BTF of ${this.path}`,
    ));
  }

  /** Closes the object and every fd libbpf holds for it; pinned maps stay in bpffs. */
  /** Closes the object (EBUSY while a loadAsync is running). */
  close(): void {
    native(() => this.raw.close());
  }
}
