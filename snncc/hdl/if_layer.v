// if_layer.v (module snn_if_layer): one layer of integrate-and-fire neurons fed by a dense weight memory.
//
// Part of the snncc FPGA bundle (see the bundle's README.txt). Synthesizable Verilog-2005.
//
// Semantics (snncc IR, integer mode; must match snncc.semantics bit for bit):
//   per step t:  x[j] = bias[j] + sum over input events (i, value) of W[j][i] * value   (exact)
//                v[j] = clip(v[j] + x[j], -2**23, 2**23 - 1)                          (24-bit state)
//   NEURON = 0 (IF):      s[j] = v[j] >= threshold[j]  (and, with FIRE_ONCE, not fired before)
//                         reset subtract: v[j] -= threshold[j] on a spike; RESET_ZERO: v[j] = 0
//   NEURON = 1 (readout, potential):   no spikes; prediction = argmax v (lowest index on ties)
//   NEURON = 2 (readout, first spike): the first step where some v[j] >= threshold[j] decides the
//                         class (largest v among the crossing neurons, lowest index on ties);
//                         until then prediction = argmax v.
//
// Dataflow (one step): input events arrive one per clock (in_valid, in_addr, in_value), then a
// one-clock in_last marker. Each event reads word in_addr of the weight memory (a registered,
// BRAM-style read) and adds the word's N_OUT weights times the event value into the N_OUT
// exact current accumulators in parallel. On in_last every neuron updates in parallel (one
// clock), then a scan over the N_OUT neurons emits one output event per spiking neuron
// (out_valid, out_addr) (readouts compute the running argmax instead) and finally out_last.
// The next layer consumes out_* as its input events, so layer k sees layer k-1's spikes of the
// same step (the IR's no-delay step semantics). `start` begins a sample: v = v_init,
// x = bias, fired flags and the decision are cleared. With STATIC_INPUT (direct-coded input,
// which is the same at every step) the host sends the sample's values once, during step 0, and
// the layer keeps the resulting current for every later step instead of recomputing it.
// The accumulators use blocking assignments: they are read only inside this block.
//
// Weight memory word i (one line of the .mem file) holds the weights from input i to every
// neuron: bits [j*W_BITS +: W_BITS] = W[j][i]. BINARY=1 (W_BITS=1): bit 1 = +1, bit 0 = -1;
// otherwise W_BITS-bit two's complement; the weight is the lane times 2**W_SHIFT (applied to the
// event value). Parameter memories hold one signed word per neuron.
`default_nettype none

module snn_if_layer #(
    parameter integer N_IN = 4,
    parameter integer N_OUT = 4,
    parameter integer W_BITS = 1,
    parameter integer BINARY = 1,
    parameter integer W_SHIFT = 0,       // stored lanes are W / 2**W_SHIFT (events are shifted)
    parameter integer SPIKE_INPUT = 1,   // 1: events are spikes (value 1); 0: signed IN_BITS values
    parameter integer IN_BITS = 1,
    parameter integer ACC_BITS = 16,     // exact synaptic current width (signed)
    parameter integer TH_BITS = 8,
    parameter integer BIAS_BITS = 2,
    parameter integer VINIT_BITS = 2,
    parameter integer HAS_BIAS = 0,
    parameter integer HAS_VINIT = 0,
    parameter integer NEURON = 0,        // 0: IF, 1: readout potential, 2: readout first spike
    parameter integer RESET_ZERO = 0,
    parameter integer FIRE_ONCE = 0,
    parameter integer STATIC_INPUT = 0,  // 1: inputs arrive at step 0 only; the current is kept
    parameter WEIGHT_FILE = "weights.mem",
    parameter THRESHOLD_FILE = "threshold.mem",
    parameter BIAS_FILE = "bias.mem",
    parameter VINIT_FILE = "v_init.mem",
    parameter integer IN_ADDR_BITS = (N_IN > 1) ? $clog2(N_IN) : 1,
    parameter integer OUT_ADDR_BITS = (N_OUT > 1) ? $clog2(N_OUT) : 1
) (
    input  wire                            clk,
    input  wire                            start,
    input  wire                            in_valid,
    input  wire [IN_ADDR_BITS-1:0]         in_addr,
    input  wire signed [IN_BITS-1:0]       in_value,
    input  wire                            in_last,
    output reg                             out_valid,
    output reg  [OUT_ADDR_BITS-1:0]        out_addr,
    output reg                             out_last,
    output reg  [OUT_ADDR_BITS-1:0]        prediction,
    output reg                             decided,
    output reg  [31:0]                     decision_step,
    input  wire [OUT_ADDR_BITS-1:0]        peek_addr,
    output wire signed [23:0]              peek_v
);
    localparam integer STATE_BITS = 24;
    localparam integer SUM_BITS = ((ACC_BITS > STATE_BITS) ? ACC_BITS : STATE_BITS) + 1;
    localparam signed [SUM_BITS-1:0] V_MAX = (2 ** (STATE_BITS - 1)) - 1;
    localparam signed [SUM_BITS-1:0] V_MIN = -(2 ** (STATE_BITS - 1));

    // Memories, initialised from the bundle ($readmemh, one word per line).
    reg        [N_OUT*W_BITS-1:0] weight_mem    [0:N_IN-1];
    reg signed [TH_BITS-1:0]      threshold_mem [0:N_OUT-1];
    reg signed [BIAS_BITS-1:0]    bias_mem      [0:N_OUT-1];
    reg signed [VINIT_BITS-1:0]   vinit_mem     [0:N_OUT-1];
    initial begin
        $readmemh(WEIGHT_FILE, weight_mem);
        if (NEURON != 1) $readmemh(THRESHOLD_FILE, threshold_mem);
        if (HAS_BIAS != 0) $readmemh(BIAS_FILE, bias_mem);
        if (HAS_VINIT != 0) $readmemh(VINIT_FILE, vinit_mem);
    end

    // Neuron state.
    reg signed [STATE_BITS-1:0] v       [0:N_OUT-1];
    reg signed [ACC_BITS-1:0]   current [0:N_OUT-1];
    reg        [N_OUT-1:0]      fired;
    reg        [N_OUT-1:0]      spikes;
    assign peek_v = v[peek_addr];

    // Stage 1: registered weight-memory read.
    reg [N_OUT*W_BITS-1:0]    word;
    reg                       s1_valid, s1_last;
    reg signed [IN_BITS-1:0]  s1_value;
    always @(posedge clk) begin
        word     <= weight_mem[in_addr];
        s1_valid <= in_valid & ~start;
        s1_last  <= in_last & ~start;
        s1_value <= in_value;
    end

    // Stage 2: accumulate, fire, scan.
    integer j;
    reg signed [W_BITS-1:0]   weight;
    reg signed [ACC_BITS-1:0] value;
    reg signed [SUM_BITS-1:0] total;
    reg signed [STATE_BITS-1:0] v_new;
    reg signed [STATE_BITS-1:0] threshold;
    reg                       spike;
    reg                       scanning;
    reg                       scan_done;
    reg [OUT_ADDR_BITS:0]     scan_index;
    reg [31:0]                step;
    reg                       best_cross, cand_cross, take;
    reg signed [STATE_BITS-1:0] best_v, cand_v;
    reg [OUT_ADDR_BITS-1:0]   best_index;

    always @(posedge clk) begin
        out_valid <= 1'b0;
        out_last  <= scan_done;  // the end marker gets its own clock, after the last event
        scan_done <= 1'b0;
        if (start) begin
            for (j = 0; j < N_OUT; j = j + 1) begin
                v[j]       <= (HAS_VINIT != 0) ? vinit_mem[j] : 0;
                current[j] = (HAS_BIAS != 0) ? bias_mem[j] : 0;
            end
            fired         <= 0;
            spikes        <= 0;
            scanning      <= 1'b0;
            scan_done     <= 1'b0;
            out_last      <= 1'b0;
            decided       <= 1'b0;
            prediction    <= 0;
            decision_step <= 0;
            step          <= 0;
        end else if (s1_valid) begin
            value = ((SPIKE_INPUT != 0) ? 1 : s1_value) <<< W_SHIFT;
            for (j = 0; j < N_OUT; j = j + 1) begin
                if (BINARY != 0) begin
                    current[j] = word[j] ? current[j] + value : current[j] - value;
                end else begin
                    weight = word[j*W_BITS +: W_BITS];
                    current[j] = current[j] + weight * value;
                end
            end
        end else if (s1_last) begin
            for (j = 0; j < N_OUT; j = j + 1) begin
                total = v[j] + current[j];
                if (total > V_MAX) v_new = V_MAX[STATE_BITS-1:0];
                else if (total < V_MIN) v_new = V_MIN[STATE_BITS-1:0];
                else v_new = total[STATE_BITS-1:0];
                if (NEURON == 0) begin
                    threshold = threshold_mem[j];
                    spike = (v_new >= threshold) && !((FIRE_ONCE != 0) && fired[j]);
                    if (spike) v_new = (RESET_ZERO != 0) ? 0 : v_new - threshold;
                    spikes[j] <= spike;
                    if (spike) fired[j] <= 1'b1;
                end
                v[j]       <= v_new;
                if (STATIC_INPUT == 0) current[j] = (HAS_BIAS != 0) ? bias_mem[j] : 0;
            end
            scanning   <= 1'b1;
            scan_index <= 0;
        end else if (scanning) begin
            out_addr <= scan_index[OUT_ADDR_BITS-1:0];
            if (NEURON == 0) begin
                out_valid <= spikes[scan_index[OUT_ADDR_BITS-1:0]];
            end else begin
                // Running argmax over (crossing now, v), earliest index on ties.
                cand_v = v[scan_index[OUT_ADDR_BITS-1:0]];
                threshold = (NEURON == 2) ? threshold_mem[scan_index[OUT_ADDR_BITS-1:0]] : 0;
                cand_cross = (NEURON == 2) && !decided && (cand_v >= threshold);
                take = (scan_index == 0) || (cand_cross && !best_cross)
                       || ((cand_cross == best_cross) && (cand_v > best_v));
                if (take) begin
                    best_cross = cand_cross;
                    best_v     = cand_v;
                    best_index = scan_index[OUT_ADDR_BITS-1:0];
                end
                if (scan_index == N_OUT - 1 && !decided) begin
                    prediction <= best_index;
                    if (best_cross) begin
                        decided       <= 1'b1;
                        decision_step <= step;
                    end
                end
            end
            if (scan_index == N_OUT - 1) begin
                scanning  <= 1'b0;
                scan_done <= 1'b1;
                step     <= step + 1;
            end
            scan_index <= scan_index + 1;
        end
    end
endmodule

`default_nettype wire
