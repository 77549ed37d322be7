// tb_network: streams input events from a file into snn_network and dumps what it computes.
//
// Part of the snncc FPGA bundle; driven by snncc.backends.fpga_hdl.simulate_hdl. Run from the
// bundle root (the weight memories are read from paths relative to it):
//   iverilog -g2005 -I hdl -o tb.vvp hdl/tb_network.v hdl/snn_network.v hdl/if_layer.v
//   vvp tb.vvp +in=events.txt +out=trace.txt
//
// Input file (decimal, whitespace separated): "SAMPLES STEPS", then for every sample and step
// "COUNT" followed by COUNT pairs "ADDRESS VALUE" (the nonzero inputs of that step; VALUE is 1 for
// spike-coded inputs). Output file, one record per line:
//   s SAMPLE STEP LAYER NEURON     a spike of IF layer LAYER (0-based, bundle order)
//   p SAMPLE STEP CLASS            the readout's prediction after the step
//   v SAMPLE CLASS VALUE           the readout's final potential
//   d SAMPLE STEP                  first-spike decision step (STEPS if undecided)
//   c SAMPLE CYCLES                clock cycles the sample took
`timescale 1ns / 1ps
`include "network_config.vh"

module tb_network;
    reg clk = 1'b0;
    always #5 clk = ~clk;

    reg                                  start = 1'b0;
    reg                                  in_valid = 1'b0;
    reg                                  in_last = 1'b0;
    reg  [`SNN_IN_ADDR_BITS-1:0]         in_addr = 0;
    reg  signed [`SNN_IN_BITS-1:0]       in_value = 0;
    wire [`SNN_TRACE_LAYERS-1:0]         spike_valid;
    wire [`SNN_TRACE_LAYERS*32-1:0]      spike_addr;
    wire                                 step_done;
    wire [`SNN_CLASS_BITS-1:0]           prediction;
    wire                                 decided;
    wire [31:0]                          decision_step;
    reg  [`SNN_CLASS_BITS-1:0]           peek_addr = 0;
    wire signed [23:0]                   peek_v;

    snn_network dut (
        .clk(clk), .start(start), .in_valid(in_valid), .in_addr(in_addr), .in_value(in_value),
        .in_last(in_last), .spike_valid(spike_valid), .spike_addr(spike_addr),
        .step_done(step_done), .prediction(prediction), .decided(decided),
        .decision_step(decision_step), .peek_addr(peek_addr), .peek_v(peek_v)
    );

    integer in_file, out_file, status, samples, steps, sample, step, count, k, address, value;
    integer layer, cycles, waited;
    reg [8*1024-1:0] in_path, out_path;

    always @(posedge clk) cycles = cycles + 1;

    // Spikes are sampled on the falling edge, when the registered outputs are stable.
    always @(negedge clk) begin
        if (|spike_valid) begin
            for (layer = 0; layer < `SNN_TRACE_LAYERS; layer = layer + 1) begin
                if (spike_valid[layer])
                    $fdisplay(out_file, "s %0d %0d %0d %0d", sample, step, layer,
                              spike_addr[layer*32 +: 32]);
            end
        end
    end

    initial begin
        if (!$value$plusargs("in=%s", in_path) || !$value$plusargs("out=%s", out_path)) begin
            $display("tb_network: give +in=FILE and +out=FILE");
            $finish;
        end
        in_file = $fopen(in_path, "r");
        out_file = $fopen(out_path, "w");
        if (in_file == 0 || out_file == 0) begin
            $display("tb_network: cannot open the input or output file");
            $finish;
        end
        status = $fscanf(in_file, "%d %d", samples, steps);
        for (sample = 0; sample < samples; sample = sample + 1) begin
            step = 0;
            @(negedge clk) start = 1'b1;
            cycles = 0;
            @(negedge clk) start = 1'b0;
            for (step = 0; step < steps; step = step + 1) begin
                status = $fscanf(in_file, "%d", count);
                for (k = 0; k < count; k = k + 1) begin
                    status = $fscanf(in_file, "%d %d", address, value);
                    @(negedge clk);
                    in_valid = 1'b1;
                    in_addr = address;
                    in_value = value;
                end
                @(negedge clk);
                in_valid = 1'b0;
                in_last = 1'b1;
                @(negedge clk);
                in_last = 1'b0;
                // step_done is a one-clock pulse; sample it on falling edges, with a watchdog.
                waited = 0;
                @(negedge clk);
                while (!step_done) begin
                    @(negedge clk);
                    waited = waited + 1;
                    if (waited > `SNN_STEP_CYCLE_LIMIT) begin
                        $display("ERROR: tb_network: no step_done after %0d cycles", waited);
                        $finish;
                    end
                end
                $fdisplay(out_file, "p %0d %0d %0d", sample, step, prediction);
            end
            for (k = 0; k < `SNN_CLASSES; k = k + 1) begin
                peek_addr = k;
                #1 $fdisplay(out_file, "v %0d %0d %0d", sample, k, peek_v);
            end
            $fdisplay(out_file, "d %0d %0d", sample, decided ? decision_step : steps);
            $fdisplay(out_file, "c %0d %0d", sample, cycles);
        end
        $fclose(out_file);
        $finish;
    end
endmodule
