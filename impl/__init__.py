"""nlmmap.impl: the production implementation over real shared memory (depends on nlmmap.spec only).

Two processes. The kernel side (``python -m nlmmap.impl.kernel``: :mod:`~nlmmap.impl.server`,
one :class:`~nlmmap.impl.ksock.KSock` per connection) owns a memfd per socket and follows the
Linux 4.5 rules, taken from :mod:`nlmmap.spec` (the family's decisions from
:mod:`nlmmap.spec.family`, the frame rules from :mod:`nlmmap.spec.protocol`); the user side is
:class:`~nlmmap.impl.client.RingSocket`. :mod:`~nlmmap.impl.adapter` speaks ``nlmmap-adapter/1``.

Modules: ``config`` (KernelConfig), ``sockstate`` (a socket's fields and counters), ``rings`` (RX
frames, ring/COPY paths, overrun, poll, wake-ups), ``sockopt`` (setsockopt, mmap), ``family_input``
(netlink_rcv_skb, ACKs, dumps), ``txwalk`` (sendmsg, the TX walk), ``services`` (echo, sink,
queue, settle), ``stream`` (the stream producer's fast path), ``ksock`` (the per-socket class),
``server`` (KernelServer, KernelProcess, main), ``kernel`` (the ``-m`` entry point); ``client``
and ``reader`` (the user side), ``atomics``, ``wire``, ``adapter``.

Known-bad kernel sides (mutants)
--------------------------------
A mutant is a subclass of :class:`~nlmmap.impl.ksock.KSock` that overrides one hook method; no
flag is threaded through the production paths. Run it with
``KernelServer(path, config, socket_class=Mutant)``, ``KernelProcess(socket_class="mod:Mutant")``,
``python -m nlmmap.impl.kernel --socket PATH --socket-class mod:Mutant`` or
``python -m nlmmap.impl.adapter --socket-class mod:Mutant`` (``mod`` a dotted module, or a path
to a ``.py`` file). The hooks (each a small method; ``self.rx``/``self.tx`` are
:class:`~nlmmap.impl.rings.Ring` records with ``offs``, ``head``, ``n``, ``cap``, ``geom``):

==================================================  ==================================================
hook (module)                                       what it does (kernel function, fact sheet section)
==================================================  ==================================================
``load_status(off) -> int`` (rings)                 acquire load of any status word (6.6)
``store_status(off, value)`` (rings)                seq_cst store of any status word (6.6)
``recheck_status(off) -> int`` (rings)              seq_cst load: a frame re-checked after a wait flag
``increment_head(ring)`` (rings)                    ``netlink_increment_head`` (2.3), RX and TX
``forward_ring() -> j | None`` (rings)              the SKIP step before a ring allocation (2.3, 9)
``ring_path(size) -> bool`` (rings)                 the COPY-path choice: a frame iff it fits (6.1)
``alloc(size, overrun=True) -> j | None`` (rings)   claim the cursor frame RESERVED, or overrun (6.1)
``write_payload(off, data)`` (rings)                the message's bytes at +24, first (6.2)
``write_rx_header(off, len, group, pid)`` (rings)   header words written before VALID/COPY (6.2)
``publish(j, data, group, pid)`` (rings)            payload, header, VALID, kick (6.2)
``free_ring_skb(j)`` (rings)                        undelivered ring skb: nm_len 0, VALID (6.4)
``sendskb_plain(data, group, pid) -> str`` (rings)  the COPY path (6.3)
``deliver_multicast(data, group, pid)`` (rings)     one multicast listener: admission, COPY (13.3)
``kernel_send(data, is_ack) -> str`` (rings)        a kernel message: frame or COPY; a lost ACK sets sk_err (6.1, 20)
``overrun()`` / ``raise_err()`` (rings)             ``netlink_overrun``; sk_err = ENOBUFS (6.5)
``is_congested() -> bool`` (rings)                  CONGESTED, cleared by a recvmsg that empties the queue (6.5)
``poll_mask() -> list[str]`` (rings)                poll's mask (7)
``check_ring(name, req, ...) -> geom`` (sockopt)    ``netlink_set_ring``'s checks and errnos (3.1)
``purge_receive_queue()`` (sockopt)                 an RX ring change drops the queued messages (3.1)
``kernel_input(datagram)`` (family_input)           ``netlink_rcv_skb``: each message's ACK in order (20)
``answer(hdr, raw) -> Reply`` (family_input)        the family's handler of one request (20)
``dump_continue() -> 0 | -errno`` (family_input)    ``netlink_dump``: one dump skb (10)
``dump_in_poll()`` (family_input)                   poll's dump continuation (7, 10)
``tx_frame_len(off) -> int`` (txwalk)               where nm_len is read, once (11.2)
``tx_check_len(n, ring)`` (txwalk)                  the walk's EINVAL check (11.2)
``tx_take(off, n) -> bytes`` (txwalk)               where the walk takes the bytes it acts on (12.1)
``tx_release(ring, off)`` (txwalk)                  TX frame UNUSED, then the head moves (11.2)
``tx_deliver(data, off, n, to) -> int`` (txwalk)    acting on a frame's message (11.2)
``kick_result(total) -> int`` (txwalk)              the kick's return value (11.2)
``verdict_ids(queued, packet_id)`` (services)       the batch verdict's selection (12.2)
``wake_user()`` (rings)                             after a publish: kick the user if it sleeps
==================================================  ==================================================

Not hooks: the stream producer's run (:meth:`~nlmmap.impl.stream.StreamMixin.stream_run`) and the
client's frame runs are this implementation's own shared-memory fast paths (raw atomics); a mutant
of them overrides ``stream_run`` or subclasses ``RingSocket``.
"""
