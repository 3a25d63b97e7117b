// dataplane/frontend-ids: frontend ids, one allocator for both address families. An id is
// unique across IPv4 and IPv6 frontends, since the conntrack, affinity and lb-stats maps key
// on it without a family. Ids are adopted from the live maps at start (a restart keeps them),
// new ones are the lowest free id, so a small table stays dense.
//
// Free ids are never listed: every id below `next` that is not in use is free. A scan pointer
// walks up over the ids in use and never goes back; an id released below it goes on a min-heap.
// Adopting n ids costs O(n) whatever their order, allocating and releasing O(log n) each
// (the earlier free list was filtered per adopted id: quadratic in frontends at start).

export class IdAllocator {
  private readonly used = new Set<number>();
  private next = 1;
  /** every free id at or above `scan` (and below `next`) is found by walking up from it */
  private scan = 1;
  /** ids released below `scan`; may hold ids taken again since (skipped when popped) */
  private readonly heap: number[] = [];
  /** elementary steps taken (scan moves, heap sifts): what the complexity test counts */
  steps = 0;

  /** Marks a live id as taken (adoption). */
  adopt(id: number): void {
    this.steps++;
    this.used.add(id);
    if (id >= this.next) this.next = id + 1;
  }

  /** The lowest free id, now taken. */
  allocate(): number {
    while (this.scan < this.next && this.used.has(this.scan)) {
      this.scan++;
      this.steps++;
    }
    while (this.heap.length > 0 && this.used.has(this.heap[0]!)) this.pop();
    // every heap entry is below `scan` (pushed there, and the scan never goes back)
    let id: number;
    if (this.heap.length > 0) id = this.pop();
    else if (this.scan < this.next) id = this.scan++;
    else {
      id = this.next++;
      this.scan = this.next;
    }
    this.used.add(id);
    return id;
  }

  release(id: number): void {
    if (!this.used.delete(id)) return;
    // at or above the scan pointer, the scan finds it again
    if (id < this.scan) this.push(id);
  }

  isUsed(id: number): boolean {
    return this.used.has(id);
  }

  get size(): number {
    return this.used.size;
  }

  private push(id: number): void {
    const h = this.heap;
    let i = h.push(id) - 1;
    while (i > 0) {
      this.steps++;
      const p = (i - 1) >> 1;
      if (h[p]! <= id) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = id;
  }

  private pop(): number {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        this.steps++;
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const c = l + 1 < h.length && h[l + 1]! < h[l]! ? l + 1 : l;
        if (h[c]! >= last) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}
