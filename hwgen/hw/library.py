"""Modules defined once and instantiated many times: one PE module for the ``rows * cols`` PEs of an array.

Amaranth elaborates every submodule into a module of its own, named after its place in the hierarchy, so an
array of N identical PEs costs N elaborations, N netlists and N module bodies in the Verilog. A `ModuleLibrary`
elaborates such a component once, as a module named ``<prefix>.<kind>`` (``ws8x8.pe``), and the block that
places them instantiates that module by name, as a hand-written Verilog array would.

The library is carried by the platform (``target.Target(family, library=...)``; `hwgen.verilog.generate` uses
one). Without one (Amaranth's simulator, the FPGA flow) `place` adds the component as an ordinary submodule, so a
block has one description for both.

A shared component must elaborate to the same logic wherever it is placed (its module depends only on the
``key`` given with it and on the platform), have a flat signature of plain ports, and take any enable through a
port: an ``EnableInserter`` or ``ResetInserter`` above an instance does not enter it.
"""

import re

from amaranth.back import rtlil
from amaranth.hdl import ClockSignal, Const, Instance, Module, ResetSignal, Value
from amaranth.lib import wiring

from . import target

__all__ = ["ModuleLibrary", "place", "shared_body"]

# A port of the first module of an RTLIL text: `  wire width 8 input 0 signed \act_in`.
_PORT = re.compile(r"^  wire width (\d+) (input|output) \d+ +(?:signed +)?\\(\S+)$", re.MULTILINE)


class _Definition:
    def __init__(self, name, ports, members):
        self.name = name            # module name
        self.ports = ports          # port -> (direction, width), as the module declares them
        self.members = members      # port -> wiring member of the component


class ModuleLibrary:
    """The shared module definitions of one design, as RTLIL, in the order they were first used.

    ``prefix``: the first part of every module name (the design's top module name, so that two accelerators
    can share one Verilog project). ``emit_src``: as for `amaranth.back.rtlil.convert`.
    """

    def __init__(self, *, prefix, emit_src=False):
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"a module library needs a non-empty name prefix, not {prefix!r}")
        self.prefix, self.emit_src = prefix, emit_src
        self._definitions = {}      # (kind, key) -> _Definition
        self._texts = []
        self._defining = []         # the components being elaborated as definitions, innermost last

    @property
    def module_names(self):
        """The shared modules' names, in definition order (a module's own submodules are not listed)."""
        return [definition.name for definition in self._definitions.values()]

    def rtlil(self):
        """The RTLIL of every module defined so far (none of them marked as the top)."""
        return "".join(self._texts)

    def define(self, make, *, kind, key, platform, rtlil_text=None, signature=None):
        """The `_Definition` for ``(kind, key)``: on the first request, the component ``make()`` returns is
        elaborated under ``platform`` into the module ``<prefix>.<kind>`` (``<kind>_2``, ... for the same kind
        with another key).

        ``rtlil_text(name)``, if given, writes that module's RTLIL instead of Amaranth (without source
        locations only; ``signature`` is then the component's signature): for a block whose Amaranth conversion
        is slow, with a test that the two texts are the same."""
        definition = self._definitions.get((kind, key))
        if definition is not None:
            return definition
        # Written by `rtlil_text`, the module only needs the component's signature, which `instance` got.
        component = make() if rtlil_text is None or self.emit_src else None
        members = _port_members(signature if component is None else component.signature)
        taken = set(self.module_names)
        name, serial = f"{self.prefix}.{kind}", 1
        while name in taken:
            serial += 1
            name = f"{self.prefix}.{kind}_{serial}"
        if rtlil_text is not None and not self.emit_src:
            text = rtlil_text(name)
        else:
            self._defining.append(component)
            try:
                text = rtlil.convert(component, name=name, platform=platform, emit_src=self.emit_src)
            finally:
                self._defining.pop()
        header = text[:text.index("\nend\n")]
        ports = {port: (direction, int(width)) for width, direction, port in _PORT.findall(header)}
        self._texts.append(text.replace("attribute \\top 1\n", "", 1))
        if set(members) - set(ports):
            raise NameError(f"module {name} lacks the ports {', '.join(sorted(set(members) - set(ports)))} "
                            f"of its component")
        definition = self._definitions[(kind, key)] = _Definition(name, ports, members)
        return definition

    def instance(self, make, *, kind, key, platform, domain="sync", rtlil_text=None, signature=None,
                 **connections):
        """An ``Instance`` of the shared module of ``make()`` (see `define`), its ports connected to
        ``connections`` (port name -> value). An input left out takes its ``init`` value, an output left out
        is not connected; an integer is a constant of the port's width. The clock and reset ports take
        ``domain``'s."""
        definition = self.define(make, kind=kind, key=key, platform=platform, rtlil_text=rtlil_text,
                                 signature=signature)
        _check_connections(kind, definition.members, connections)
        arguments = {}
        for port, (direction, width) in definition.ports.items():
            if port in connections:
                value = connections[port]
                value = Const(value, width) if isinstance(value, int) else Value.cast(value)
                if len(value) != width:
                    raise ValueError(f"port {port} of the {kind} is {width} bits wide, not {len(value)}")
                arguments[f"{direction[0]}_{port}"] = value
            elif port in definition.members:
                if direction == "input":
                    arguments[f"i_{port}"] = Const(definition.members[port].init, width)
            elif port == "clk":
                arguments["i_clk"] = ClockSignal(domain)
            elif port == "rst":
                arguments["i_rst"] = ResetSignal(domain)
            else:
                raise NameError(f"module {definition.name} has a port {port} that its component does not declare")
        return Instance(definition.name, **arguments)


def shared_body(component, platform, *, kind, key, make, rtlil_text=None, name="shared"):
    """For a component that is placed as an ordinary submodule by code that does not use `place`: call it
    first in its ``elaborate``. Under a platform with a `ModuleLibrary` it returns the component's body as one
    instance ``name`` of the shared module for ``(kind, key)`` (``make()`` builds the component that defines
    it), its ports wired to the component's own; otherwise, or while that definition is being elaborated,
    ``None`` (elaborate the component itself). ``rtlil_text``: see `ModuleLibrary.define`."""
    library = target.module_library(platform)
    if library is None or any(component is defining for defining in library._defining):
        return None
    m = Module()
    connections = {port: getattr(component, port) for port in _port_members(component.signature)}
    m.submodules[name] = library.instance(make, kind=kind, key=key, platform=platform, rtlil_text=rtlil_text,
                                          signature=component.signature, **connections)
    return m


def _port_members(signature):
    """``{port name: member}`` of a component's flat signature (the names `amaranth.back.rtlil` gives the
    ports)."""
    members = {}
    for path, member in signature.members.flatten():
        if not member.is_port or member.dimensions or len(path) != 1:
            raise TypeError(f"a shared component needs a flat signature of plain ports; "
                            f"{'.'.join(map(str, path))} is not one")
        members[path[0]] = member
    return members


def _check_connections(kind, members, connections):
    unknown = sorted(set(connections) - set(members))
    if unknown:
        raise NameError(f"the {kind} has no port named {', '.join(unknown)}; its ports are {', '.join(members)}")


def place(m, name, make, *, kind, key, platform, **connections):
    """Add the component ``make()`` returns to ``m`` as submodule ``name``, its ports connected to
    ``connections`` (port name -> value: an input is driven from its value, an output drives its value).

    Under a platform that carries a `ModuleLibrary` it is an instance of the shared module for ``(kind,
    key)`` (``make`` is called once per key); otherwise an ordinary submodule wired with ``comb``
    assignments."""
    library = target.module_library(platform)
    if library is not None:
        m.submodules[name] = library.instance(make, kind=kind, key=key, platform=platform, **connections)
        return
    component = make()
    members = _port_members(component.signature)
    _check_connections(kind, members, connections)
    m.submodules[name] = component
    for port, value in connections.items():
        if members[port].flow == wiring.In:
            m.d.comb += getattr(component, port).eq(value)
        else:
            m.d.comb += Value.cast(value).eq(getattr(component, port))
