"""Partition analysis: will a graph fit a chip, on how many cores and chips, and where it overflows.

A pure function over the IR (:func:`partition`) returning a :class:`PartitionReport`; the graph is
never mutated. Costs come from :mod:`snncc.resources` (the same model the Lava and FPGA backends
use). Rules:

1. **Layers** are synaptic nodes plus the neurons they feed (:func:`snncc.resources.analyze_layers`).
   Float weights are counted at 8 bits (the default deployment precision) unless
   ``weight_bits`` forces a width for every layer (e.g. planning a binarized network).
2. **Layer-wide limits** that no split can fix are checked first: weight width
   (``weight_bits``), kernel side (``max_kernel``), consumer layers per core (``destinations``).
3. **Splitting** (``split: true``): a layer whose whole-layer usage exceeds a core is cut into
   ``pieces = max over resources of ceil(used / limit)`` blocks (the rule of nengo-loihi and
   other open-source Loihi tooling); dense layers by output neurons, conv layers by output
   channels first and then by spatial tiles of the output map (channel groups x row tiles x
   column tiles, fewest spatial tiles first). If some block still exceeds a limit (block
   costs are not exactly proportional), the piece count grows until every block fits; a resource
   that does not shrink with smaller blocks (e.g. a dense neuron's input axons) ends in a
   violation. Output axons count ``neurons x destination cores``; a neuron reaches every block of
   a dense consumer and every channel group of a conv consumer.
4. **Cores**: one block per core (``layers_per_core: 1``); profiles with ``layers_per_core: null``
   (FPGA) pack every layer into one pool and sum their use. Chips whose cores differ (DYNAP-CNN)
   take one layer per core, assigned by a maximum bipartite matching of layers to the cores that
   can hold them (Hopcroft-Karp, networkx).
5. **Chips** needed ``= ceil(cores / cores_per_chip)``; more than the profile's ``chips`` or than
   the ``max_cores`` / ``max_chips`` gates is a violation.
6. **Placement** (more than one chip): cores are assigned to chips by recursive Kernighan-Lin
   bisection (networkx) of the core graph weighted by spike traffic, starting from the greedy
   placement (cores in layer order filling chip after chip) so that each bisection only improves
   its cut. Traffic from block ``a`` to block ``b`` is ``rate x synapses``: the mean spikes per
   neuron per step of ``a``'s layer output (``spike_rates[node]``; 1.0 when not measured) times
   the nonzero synapses from ``a``'s neurons into ``b``. The report gives the inter-chip
   traffic of both placements and keeps the lower one. Above ``PARTITIONER_MAX_CORES`` cores
   only the greedy placement is computed (and the report says so).
7. The **verdict** is "fits" when there is no violation, else "does not fit" with the first
   violation, worded like ``layer 'conv2': synapse memory 161 KiB exceeds the per-core limit of
   128 KiB``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from snncc import ir
from snncc.errors import SnnccError
from snncc.resources import (
    Block,
    ChipProfile,
    LayerResources,
    analyze_layers,
    axon_weight_counts,
    block_usage,
    load_chip,
    whole_block,
)

#: Kernighan-Lin is quadratic-ish in the core count: above this many cores only the greedy
#: placement is reported.
PARTITIONER_MAX_CORES = 2048

#: Width at which float (unquantized) weights are counted.
FLOAT_WEIGHT_BITS = 8

#: Per-core resources that are memories (what a sweep reports as "memory").
MEMORY_RESOURCES = ("synapse_memory_bits", "synapses", "kernel_memory", "neuron_memory", "bram36")

#: Human names of the per-core resources, as used in verdicts.
RESOURCE_NAMES = {
    "neurons": "neurons",
    "input_axons": "input axons",
    "output_axons": "output axons",
    "synapses": "synapses",
    "synapse_memory_bits": "synapse memory",
    "fan_in": "fan-in",
    "kernel_memory": "kernel memory",
    "neuron_memory": "neuron memory",
    "bram36": "block RAM",
}


def format_amount(resource: str, value: float) -> str:
    """A resource amount with its unit: KiB for synapse memory, entries, BRAM36 blocks."""
    if resource == "synapse_memory_bits":
        kib = value / 8 / 1024
        text = f"{kib:.1f}".rstrip("0").rstrip(".")
        return f"{text} KiB"
    if resource in ("kernel_memory", "neuron_memory"):
        return f"{int(value)} entries"
    if resource == "bram36":
        return f"{int(value)} BRAM36"
    return str(int(value))


def describe_excess(subject: str, resource: str, used: int, limit: int, scope: str) -> str:
    """``layer 'x': synapse memory 161 KiB exceeds the per-core limit of 128 KiB``."""
    return (f"{subject}: {RESOURCE_NAMES.get(resource, resource)} {format_amount(resource, used)} "
            f"exceeds the {scope} limit of {format_amount(resource, limit)}")


@dataclass
class LayerPlan:
    """How one layer maps onto cores: its blocks, what each uses, and the split chosen."""

    layer: LayerResources
    blocks: list[Block]
    usage: list[dict[str, int]]
    split: str
    lower_bound: int
    reach: int
    whole_usage: dict[str, int] = field(default_factory=dict)

    @property
    def pieces(self) -> int:
        return len(self.blocks)

    @property
    def channel_groups(self) -> int:
        return len({b.channels for b in self.blocks})

    def peak(self, resource: str) -> int:
        return max((u.get(resource, 0) for u in self.usage), default=0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer.as_dict(), "pieces": self.pieces, "split": self.split,
            "lower_bound": self.lower_bound, "destination_cores_per_neuron": self.reach,
            "whole_layer_usage": self.whole_usage,
            "blocks": [dict(b.as_dict(), usage=u) for b, u in zip(self.blocks, self.usage, strict=True)],
        }


@dataclass
class CoreAssignment:
    """One core: the blocks it holds, its chip, and ``{resource: (used, limit)}``."""

    index: int
    chip: int
    blocks: list[str]
    utilization: dict[str, tuple[int, int]]

    def as_dict(self) -> dict[str, Any]:
        return {"core": self.index, "chip": self.chip, "blocks": self.blocks,
                "utilization": {k: list(v) for k, v in self.utilization.items()}}


@dataclass
class Placement:
    """Cores assigned to chips, with inter-chip spike traffic (rate x synapses per step)."""

    method: str
    chip_of_core: list[int]
    traffic: float
    greedy_traffic: float
    partitioner_traffic: float
    total_traffic: float

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "chip_of_core": self.chip_of_core,
                "inter_chip_traffic": self.traffic, "greedy_traffic": self.greedy_traffic,
                "partitioner_traffic": self.partitioner_traffic,
                "total_traffic": self.total_traffic}


@dataclass
class PartitionReport:
    """Result of :func:`partition`: per-layer plans, per-core use, chips, verdict."""

    chip: ChipProfile
    model: str
    layers: list[LayerPlan]
    cores: list[CoreAssignment]
    chips_needed: int
    violations: list[str]
    notes: list[str]
    placement: Placement | None
    rates_measured: bool
    max_cores: int | None = None
    max_chips: int | None = None
    spike_rates: dict[str, float] | None = None

    @property
    def fits(self) -> bool:
        return not self.violations

    @property
    def cores_used(self) -> int:
        return len(self.cores)

    @property
    def cores_per_chip(self) -> list[int]:
        counts = [0] * max(self.chips_needed, 1)
        for core in self.cores:
            counts[core.chip] += 1
        return counts

    @property
    def memory_used(self) -> dict[str, int]:
        """Each memory resource (:data:`MEMORY_RESOURCES`) the chip limits, summed over cores."""
        totals: dict[str, int] = {}
        for core in self.cores:
            for resource, (used, _) in core.utilization.items():
                if resource in MEMORY_RESOURCES:
                    totals[resource] = totals.get(resource, 0) + int(used)
        return totals

    @property
    def verdict(self) -> str:
        return "fits" if self.fits else f"does not fit: {self.violations[0]}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "chip": self.chip.as_dict(), "fits": self.fits,
            "verdict": self.verdict, "violations": self.violations, "notes": self.notes,
            "cores_used": self.cores_used, "chips_needed": self.chips_needed,
            "cores_per_chip": self.cores_per_chip, "max_cores": self.max_cores,
            "max_chips": self.max_chips, "rates_measured": self.rates_measured,
            "spike_rates": self.spike_rates,
            "layers": [plan.as_dict() for plan in self.layers],
            "cores": [core.as_dict() for core in self.cores],
            "placement": self.placement.as_dict() if self.placement else None,
        }


# ------------------------------------------------------------------------------------- splitting


def _limits(chip: ChipProfile) -> dict[str, int]:
    return {r: chip.core_limit(r, 0) for r in chip.core}  # type: ignore[misc]


def _worst(usages: list[dict[str, int]], limits: dict[str, int]) -> tuple[float, str, int]:
    """Largest used/limit ratio over blocks and resources: (ratio, resource, used)."""
    worst = (0.0, "", 0)
    for usage in usages:
        for resource, used in usage.items():
            ratio = used / limits[resource]
            if ratio > worst[0]:
                worst = (ratio, resource, used)
    return worst


def _ranges(total: int, parts: int) -> list[tuple[int, int]]:
    bounds = [(i * total) // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


def _grid(layer: LayerResources, groups: int, row_tiles: int, col_tiles: int) -> list[Block]:
    if layer.kind == "dense":
        return [Block(layer.name, i, r) for i, r in enumerate(_ranges(layer.neurons, groups))]
    channels, height, width = layer.output_shape
    blocks = []
    for c in _ranges(channels, groups):
        for r in _ranges(height, row_tiles):
            for q in _ranges(width, col_tiles):
                blocks.append(Block(layer.name, len(blocks), c, r, q))
    return blocks


def _part_counts(size: int) -> list[int]:
    """Part counts that give distinct largest chunks of ``size`` items (``ceil(size / k)``)."""
    return sorted({math.ceil(size / chunk) for chunk in range(1, size + 1)})


def _candidate_shapes(layer: LayerResources, lower: int) -> list[tuple[int, int, int]]:
    """(channel groups, row tiles, column tiles) with at least ``lower`` pieces, in the order
    tried: fewest pieces, then fewest spatial tiles, then the squarest tiling."""
    if layer.kind == "dense":
        return [(p, 1, 1) for p in _part_counts(layer.neurons) if p >= lower]
    channels, height, width = layer.output_shape
    shapes = [(g, r, c) for g in _part_counts(channels) for r in _part_counts(height)
              for c in _part_counts(width) if g * r * c >= lower]
    shapes.sort(key=lambda s: (s[0] * s[1] * s[2], s[1] * s[2], abs(s[1] - s[2])))
    return shapes


def _describe_split(layer: LayerResources, shape: tuple[int, int, int]) -> str:
    groups, rows, cols = shape
    if groups * rows * cols == 1:
        return "whole layer"
    if layer.kind == "dense":
        return f"{groups} output groups"
    text = f"{groups} channel groups"
    if rows * cols > 1:
        text += f" x {rows}x{cols} tiles"
    return text


def _smallest_block(node: ir.Dense | ir.Conv2d, layer: LayerResources) -> Block:
    """A one-neuron block: the neuron with the most nonzero inputs (centre of its map)."""
    nonzero = (node.weight != 0).reshape(node.weight.shape[0], -1).sum(axis=1)
    channel = int(np.argmax(nonzero))
    if layer.kind == "dense":
        return Block(layer.name, 0, (channel, channel + 1))
    _, height, width = layer.output_shape
    return Block(layer.name, 0, (channel, channel + 1), (height // 2, height // 2 + 1),
                 (width // 2, width // 2 + 1))


class _UsageTable:
    """``block_usage`` memoised over translation: two conv tiles of equal size whose receptive
    fields lie wholly inside the input (no padding touched) use exactly the same resources."""

    def __init__(self, node: ir.Dense | ir.Conv2d, layer: LayerResources, chip: ChipProfile,
                 reach: int) -> None:
        self.node, self.layer, self.chip, self.reach = node, layer, chip, reach
        self.memo: dict[tuple, dict[str, int]] = {}

    def axis_key(self, span: tuple[int, int], axis: int) -> tuple:
        if self.layer.kind == "dense":
            return span
        node = self.node
        size = self.layer.input_shape[1 + axis]
        kernel = node.weight.shape[2 + axis]
        stride, pad, dilation = node.stride[axis], node.padding[axis], node.dilation[axis]
        first = span[0] * stride - pad
        last = (span[1] - 1) * stride - pad + (kernel - 1) * dilation
        return ("interior", span[1] - span[0]) if first >= 0 and last < size else span

    def __call__(self, block: Block) -> dict[str, int]:
        key = (block.channels, self.axis_key(block.rows, 0), self.axis_key(block.cols, 1))
        if key not in self.memo:
            self.memo[key] = block_usage(self.node, self.layer, block, self.chip, self.reach)
        return self.memo[key]

    def worst(self, shape: tuple[int, int, int], limits: dict[str, int]) -> float:
        """Largest used/limit over the distinct blocks of a grid ``shape``."""
        groups, row_tiles, col_tiles = shape
        if self.layer.kind == "dense":
            channel_spans, row_spans, col_spans = _ranges(self.layer.neurons, groups), [(0, 1)], \
                [(0, 1)]
        else:
            channels, height, width = self.layer.output_shape
            channel_spans = _ranges(channels, groups)
            row_spans = list({self.axis_key(r, 0): r for r in _ranges(height, row_tiles)}.values())
            col_spans = list({self.axis_key(c, 1): c for c in _ranges(width, col_tiles)}.values())
        usages = [self(Block(self.layer.name, 0, c, r, q))
                  for c in channel_spans for r in row_spans for q in col_spans]
        return _worst(usages, limits)[0]


def _plan_layer(node: ir.Dense | ir.Conv2d, layer: LayerResources, chip: ChipProfile, reach: int,
                violations: list[str]) -> LayerPlan:
    limits = _limits(chip)
    table = _UsageTable(node, layer, chip, reach)
    whole = whole_block(layer)
    whole_usage = block_usage(node, layer, whole, chip, reach)
    lower = max(math.ceil(used / limits[r]) for r, used in whole_usage.items())
    if not chip.split or lower <= 1:
        return LayerPlan(layer, [whole], [whole_usage], "whole layer", max(lower, 1), reach,
                         whole_usage)
    candidates = _candidate_shapes(layer, lower)

    def plan_for(shape: tuple[int, int, int], split: str) -> LayerPlan:
        blocks = _grid(layer, *shape)
        return LayerPlan(layer, blocks, [table(b) for b in blocks], split, lower, reach,
                         whole_usage)

    smallest = block_usage(node, layer, _smallest_block(node, layer), chip, reach)
    ratio, resource, used = _worst([smallest], limits)
    if ratio > 1.0:
        violations.append(describe_excess(f"layer {layer.name!r}", resource, used,
                                          limits[resource], "per-core")
                          + " even with one neuron per core")
        return plan_for(candidates[0], "cannot split to fit")
    for shape in candidates:
        if table.worst(shape, limits) <= 1.0:
            return plan_for(shape, _describe_split(layer, shape))
    raise AssertionError(f"no block shape found for layer {layer.name!r}")  # 1 neuron fits


# --------------------------------------------------------------------------------------- traffic


def _owner_map(source: LayerPlan, target: LayerResources) -> np.ndarray | None:
    """For each input neuron of ``target`` (flattened), the index of ``source``'s block that
    produced it; None when the shapes cannot be related."""
    shape = source.layer.output_shape
    owner = np.zeros(shape if len(shape) == 3 else (shape[0], 1, 1), dtype=np.int64)
    for index, block in enumerate(source.blocks):
        owner[block.channels[0]:block.channels[1], block.rows[0]:block.rows[1],
              block.cols[0]:block.cols[1]] = index
    target_shape = target.input_shape
    if int(np.prod(target_shape)) == owner.size:
        return owner.reshape(-1)
    if len(target_shape) == 3 and target_shape[0] == owner.shape[0]:
        rows = (np.arange(target_shape[1]) * owner.shape[1]) // target_shape[1]
        cols = (np.arange(target_shape[2]) * owner.shape[2]) // target_shape[2]
        return owner[:, rows][:, :, cols].reshape(-1)
    return None


def core_traffic(graph: ir.Graph, plans: list[LayerPlan], core_of_block: dict[str, int],
                 spike_rates: dict[str, float] | None) -> dict[tuple[int, int], float]:
    """Spike traffic between cores: ``{(source core, target core): rate x synapses per step}``."""
    by_name = {plan.layer.name: plan for plan in plans}
    traffic: dict[tuple[int, int], float] = {}
    rates = spike_rates or {}
    for target in plans:
        node = graph.nodes[target.layer.name]
        for source_name in target.layer.sources:
            source = by_name.get(source_name)
            if source is None:
                continue
            if len(target.layer.sources) == 1 and target.layer.spike_node in rates:
                rate = rates[target.layer.spike_node]
            else:
                rate = rates.get(source.layer.neuron_node or "", 1.0 if not rates else 0.0)
            owner = _owner_map(source, target.layer)
            for block in target.blocks:
                _, nonzero = axon_weight_counts(node, target.layer, block)
                target_core = core_of_block[block.label]
                if owner is None:
                    share = nonzero.sum() / max(len(source.blocks), 1)
                    crossing = {i: share for i in range(len(source.blocks))}
                else:
                    sums = np.bincount(owner, weights=nonzero, minlength=len(source.blocks))
                    crossing = dict(enumerate(sums))
                for index, synapses in crossing.items():
                    if synapses <= 0:
                        continue
                    source_core = core_of_block[source.blocks[index].label]
                    key = (source_core, target_core)
                    traffic[key] = traffic.get(key, 0.0) + float(rate) * float(synapses)
    return traffic


def inter_chip_traffic(traffic: dict[tuple[int, int], float], chip_of_core: list[int]) -> float:
    """Traffic on edges whose two cores sit on different chips."""
    return float(sum(v for (a, b), v in traffic.items() if chip_of_core[a] != chip_of_core[b]))


def greedy_placement(cores: int, capacity: int) -> list[int]:
    """Cores in layer order fill chip 0, then chip 1, ... (the baseline)."""
    return [core // capacity for core in range(cores)]


def kernighan_lin_placement(traffic: dict[tuple[int, int], float], cores: int, chips: int,
                            capacity: int) -> list[int]:
    """Assign ``cores`` to ``chips`` (at most ``capacity`` each) minimising cut traffic.

    Recursive bisection with networkx's Kernighan-Lin (swaps keep each side's size). Each
    bisection starts from the greedy split (the first ``ceil(k/2) * capacity`` cores in order).
    """
    graph = nx.Graph()
    graph.add_nodes_from(range(cores))
    for (a, b), value in traffic.items():
        if a == b:
            continue
        previous = graph.get_edge_data(a, b, {"weight": 0.0})["weight"]
        graph.add_edge(a, b, weight=previous + value)
    chip_of_core = [0] * cores

    def bisect(members: list[int], first_chip: int, count: int) -> None:
        if count == 1 or len(members) <= capacity:
            for member in members:
                chip_of_core[member] = first_chip
            return
        left_chips = (count + 1) // 2
        left_size = min(left_chips * capacity, len(members))
        left, right = set(members[:left_size]), set(members[left_size:])
        if left and right:
            side_a, side_b = nx.algorithms.community.kernighan_lin_bisection(
                graph.subgraph(members), partition=(left, right), weight="weight", seed=0)
            left, right = (side_a, side_b) if len(side_a) == left_size else (side_b, side_a)
        bisect(sorted(left), first_chip, left_chips)
        bisect(sorted(right), first_chip + left_chips, count - left_chips)

    bisect(list(range(cores)), 0, chips)
    return chip_of_core


# ------------------------------------------------------------------------------------- partition


def _layer_checks(layer: LayerResources, chip: ChipProfile, violations: list[str]) -> None:
    subject = f"layer {layer.name!r}"
    if chip.weight_bits is not None and layer.weight_bits > chip.weight_bits:
        violations.append(f"{subject}: weights need {layer.weight_bits} bits, exceeds the "
                          f"{chip.weight_bits}-bit synapses of {chip.name}")
    if chip.max_kernel is not None:
        _, kernel_h, kernel_w = layer.kernel_input
        if max(kernel_h, kernel_w) > chip.max_kernel:
            violations.append(f"{subject}: kernel {kernel_h}x{kernel_w} exceeds the per-core "
                              f"limit of {chip.max_kernel}x{chip.max_kernel}")
    if chip.destinations is not None and len(layer.consumers) > chip.destinations:
        violations.append(f"{subject}: {len(layer.consumers)} destination layers exceeds the "
                          f"per-core limit of {chip.destinations}")


def _assign_heterogeneous(plans: list[LayerPlan], chip: ChipProfile,
                          violations: list[str]) -> list[tuple[int, LayerPlan]]:
    """One layer per core on chips whose cores differ: maximum bipartite matching."""
    graph = nx.Graph()
    layer_nodes = [("layer", i) for i in range(len(plans))]
    core_nodes = [("core", c) for c in range(chip.cores_per_chip)]
    graph.add_nodes_from(layer_nodes, bipartite=0)
    graph.add_nodes_from(core_nodes, bipartite=1)
    for i, plan in enumerate(plans):
        usage = plan.usage[0]
        fitting = [c for c in range(chip.cores_per_chip)
                   if all(used <= chip.core_limit(r, c) for r, used in usage.items())]
        for c in fitting:
            graph.add_edge(("layer", i), ("core", c))
        if not fitting:
            resource, used, limit = max(
                ((r, used, max(chip.core_limit(r, c) for c in range(chip.cores_per_chip)))
                 for r, used in usage.items()),
                key=lambda item: item[1] / item[2])
            violations.append(describe_excess(f"layer {plan.layer.name!r}", resource, used, limit,
                                              "largest per-core"))
    if len(plans) > chip.cores_per_chip:
        violations.append(f"network: {len(plans)} layers exceeds the {chip.cores_per_chip} "
                          f"cores of {chip.name} (one layer per core, layers cannot be split)")
    matching = nx.bipartite.hopcroft_karp_matching(graph, top_nodes=layer_nodes)
    placed = [(matching[("layer", i)][1], plans[i]) for i in range(len(plans))
              if ("layer", i) in matching]
    unplaced = [plans[i].layer.name for i in range(len(plans)) if ("layer", i) not in matching]
    if unplaced and len(plans) <= chip.cores_per_chip and not any(
            v.startswith(f"layer {name!r}") for name in unplaced for v in violations):
        violations.append(f"network: no assignment of layers to the {chip.cores_per_chip} cores "
                          f"of {chip.name} holds layer(s) {', '.join(map(repr, unplaced))}")
    return placed


def partition(graph: ir.Graph, chip: ChipProfile | str, *,
              spike_rates: dict[str, float] | None = None, max_cores: int | None = None,
              max_chips: int | None = None, weight_bits: int | None = None) -> PartitionReport:
    """Map ``graph`` onto ``chip`` (a profile or a built-in name); see the module rules.

    ``spike_rates``: mean spikes per neuron per step by node name (IF, MaxPool2d, Input), as
    measured by the reference simulator; without them every neuron counts as 1.0 in the traffic
    figures. ``max_cores`` / ``max_chips`` are gates: exceeding one is a violation.
    ``weight_bits`` forces the weight width of every layer (default: from the weights, 8 for
    float weights).
    """
    profile = load_chip(chip) if isinstance(chip, str) else chip
    graph.validate()
    default_bits = FLOAT_WEIGHT_BITS
    layers = analyze_layers(graph, bits=weight_bits, default_bits=default_bits)
    violations: list[str] = []
    notes: list[str] = []
    if not layers:
        raise SnnccError("graph has no synaptic layers (Dense/Conv2d) to place")
    floating = [layer.name for layer in layers
                if graph.nodes[layer.name].weight.dtype.kind == "f"
                and not np.all(graph.nodes[layer.name].weight
                               == np.round(graph.nodes[layer.name].weight))]
    if floating and weight_bits is None:
        notes.append(f"float weights in {', '.join(floating)}: counted at {default_bits} bits "
                     f"(quantize for exact figures)")
    if profile.estimate:
        notes.append(f"{profile.name}: some limits are estimates (see the profile's sources)")
    for layer in layers:
        _layer_checks(layer, profile, violations)

    # Consumers first (a layer's output axons depend on how its consumers split); violations
    # are reported in layer order.
    plans_by_name: dict[str, LayerPlan] = {}
    split_violations: dict[str, list[str]] = {}
    for layer in reversed(layers):
        reach = 0
        for consumer in layer.consumers:
            plan = plans_by_name[consumer]
            reach += plan.pieces if plan.layer.kind == "dense" else plan.channel_groups
        split_violations[layer.name] = []
        plans_by_name[layer.name] = _plan_layer(graph.nodes[layer.name], layer, profile,
                                                max(reach, 1), split_violations[layer.name])
    plans = [plans_by_name[layer.name] for layer in layers]
    for layer in layers:
        violations.extend(split_violations[layer.name])

    cores: list[CoreAssignment] = []
    if profile.heterogeneous:
        for core_index, plan in sorted(_assign_heterogeneous(plans, profile, violations),
                                       key=lambda item: item[0]):
            cores.append(CoreAssignment(
                core_index, 0, [plan.blocks[0].label],
                {r: (u, profile.core_limit(r, core_index)) for r, u in plan.usage[0].items()}))
    elif profile.layers_per_core == 1:
        limits = _limits(profile)
        for plan in plans:
            for block, usage in zip(plan.blocks, plan.usage, strict=True):
                index = len(cores)
                cores.append(CoreAssignment(index, index // profile.cores_per_chip, [block.label],
                                            {r: (u, limits[r]) for r, u in usage.items()}))
        if not profile.split:
            for plan in plans:
                for resource, used in plan.usage[0].items():
                    if used > limits[resource]:
                        violations.append(describe_excess(f"layer {plan.layer.name!r}", resource,
                                                          used, limits[resource], "per-core"))
    else:
        cores = _pack(plans, profile, violations)

    cores_used = len(cores) if not profile.heterogeneous else len(plans)
    chips_needed = max(1, math.ceil(cores_used / profile.cores_per_chip))
    for core in cores:
        core.chip = min(core.chip, chips_needed - 1)
    if chips_needed > profile.chips and profile.kind != "fpga":  # FPGA: _pack words the total
        violations.append(
            f"network: needs {chips_needed} chips ({cores_used} cores at "
            f"{profile.cores_per_chip} per chip), exceeds the {profile.chips} chip(s) of "
            f"{profile.name}")
    if max_cores is not None and cores_used > max_cores:
        violations.append(f"network: {cores_used} cores exceeds the --max-cores gate of "
                          f"{max_cores}")
    if max_chips is not None and chips_needed > max_chips:
        violations.append(f"network: {chips_needed} chips exceeds the --max-chips gate of "
                          f"{max_chips}")

    placement = None
    if chips_needed > 1 and profile.layers_per_core == 1 and not profile.heterogeneous:
        placement = _place(graph, plans, cores, profile, chips_needed, spike_rates)
        for core in cores:
            core.chip = placement.chip_of_core[core.index]
    return PartitionReport(
        chip=profile, model=str(graph.metadata.get("source", "")), layers=plans, cores=cores,
        chips_needed=chips_needed, violations=violations, notes=notes, placement=placement,
        rates_measured=bool(spike_rates), max_cores=max_cores, max_chips=max_chips,
        spike_rates=dict(spike_rates) if spike_rates else None)


def _pack(plans: list[LayerPlan], chip: ChipProfile, violations: list[str]) -> list[CoreAssignment]:
    """First-fit packing of blocks into cores holding several layers (FPGA: one shared pool)."""
    limits = _limits(chip)
    scope = "device" if chip.kind == "fpga" else "per-core"
    cores: list[CoreAssignment] = []
    loads: list[dict[str, int]] = []
    for plan in plans:
        for block, usage in zip(plan.blocks, plan.usage, strict=True):
            for resource, used in usage.items():
                if used > limits[resource]:
                    violations.append(describe_excess(f"layer {block.layer!r}", resource, used,
                                                      limits[resource], scope))
            for index, load in enumerate(loads):
                full = chip.layers_per_core is not None and \
                    len(cores[index].blocks) >= chip.layers_per_core
                if not full and all(load[r] + usage[r] <= limits[r] for r in usage):
                    break
            else:
                index = len(loads)
                loads.append({r: 0 for r in limits})
                cores.append(CoreAssignment(index, index // chip.cores_per_chip, [], {}))
            for resource, used in usage.items():
                loads[index][resource] += used
            cores[index].blocks.append(block.label)
    for core, load in zip(cores, loads, strict=True):
        core.utilization = {r: (load[r], limits[r]) for r in limits}
    total = {r: sum(load[r] for load in loads) for r in limits}
    if len(cores) > chip.cores_per_chip * chip.chips:
        for resource, used in total.items():
            if used > limits[resource] * chip.cores_per_chip * chip.chips:
                violations.append(describe_excess(
                    "network", resource, used, limits[resource] * chip.cores_per_chip * chip.chips,
                    "device" if chip.kind == "fpga" else "chip"))
                break
    return cores


def _place(graph: ir.Graph, plans: list[LayerPlan], cores: list[CoreAssignment],
           chip: ChipProfile, chips_needed: int, spike_rates: dict[str, float] | None
           ) -> Placement:
    core_of_block = {label: core.index for core in cores for label in core.blocks}
    traffic = core_traffic(graph, plans, core_of_block, spike_rates)
    greedy = greedy_placement(len(cores), chip.cores_per_chip)
    greedy_cut = inter_chip_traffic(traffic, greedy)
    if len(cores) > PARTITIONER_MAX_CORES:
        return Placement(method=f"greedy ({len(cores)} cores exceed the partitioner's budget of "
                         f"{PARTITIONER_MAX_CORES})", chip_of_core=greedy, traffic=greedy_cut,
                         greedy_traffic=greedy_cut, partitioner_traffic=math.nan,
                         total_traffic=float(sum(traffic.values())))
    partitioned = kernighan_lin_placement(traffic, len(cores), chips_needed, chip.cores_per_chip)
    partitioned_cut = inter_chip_traffic(traffic, partitioned)
    if partitioned_cut <= greedy_cut:
        method, chosen, cut = "kernighan-lin (networkx)", partitioned, partitioned_cut
    else:
        method, chosen, cut = "greedy (kernighan-lin found no better cut)", greedy, greedy_cut
    return Placement(method=method, chip_of_core=chosen, traffic=cut, greedy_traffic=greedy_cut,
                     partitioner_traffic=partitioned_cut,
                     total_traffic=float(sum(traffic.values())))
