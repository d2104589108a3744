// Behavioural models of the two ECP5 cells hwgen instantiates (hwgen/hw/bram.py, hwgen/hw/multiplier.py),
// for simulating the ECP5 form of a design with Icarus or Verilator. Yosys ships these cells as black boxes
// only. Each model covers the configurations hwgen generates and stops the simulation on any other.
`timescale 1ns/1ps

// DP16KD in true-dual-port mode with port A writing and port B reading, both DATA_WIDTH 1, 2, 4, 9 or 18;
// REGMODE_B NOREG (data from the read latch) or OUTREG (one more register, clock-enabled by OCEB).
module DP16KD (
  DIA0, DIA1, DIA2, DIA3, DIA4, DIA5, DIA6, DIA7, DIA8, DIA9, DIA10, DIA11, DIA12, DIA13, DIA14, DIA15, DIA16, DIA17, ADA0, ADA1, ADA2, ADA3, ADA4, ADA5, ADA6, ADA7, ADA8, ADA9, ADA10, ADA11, ADA12, ADA13, CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0, DOA0, DOA1, DOA2, DOA3, DOA4, DOA5, DOA6, DOA7, DOA8, DOA9, DOA10, DOA11, DOA12, DOA13, DOA14, DOA15, DOA16, DOA17, DIB0, DIB1, DIB2, DIB3, DIB4, DIB5, DIB6, DIB7, DIB8, DIB9, DIB10, DIB11, DIB12, DIB13, DIB14, DIB15, DIB16, DIB17, ADB0, ADB1, ADB2, ADB3, ADB4, ADB5, ADB6, ADB7, ADB8, ADB9, ADB10, ADB11, ADB12, ADB13, CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0, DOB0, DOB1, DOB2, DOB3, DOB4, DOB5, DOB6, DOB7, DOB8, DOB9, DOB10, DOB11, DOB12, DOB13, DOB14, DOB15, DOB16, DOB17);
  input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0;
  input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0;
  input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0;
  output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0;
  input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0;
  input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0;
  input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0;
  output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0;
  parameter DATA_WIDTH_A = 18;
  parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG";
  parameter REGMODE_B = "NOREG";
  parameter RESETMODE = "SYNC";
  parameter ASYNC_RESET_RELEASE = "SYNC";
  parameter CSDECODE_A = "0b000";
  parameter CSDECODE_B = "0b000";
  parameter WRITEMODE_A = "NORMAL";
  parameter WRITEMODE_B = "NORMAL";
  parameter GSR = "ENABLED";
  localparam W = DATA_WIDTH_B;
  localparam LSB = W == 18 ? 4 : W == 9 ? 3 : W == 4 ? 2 : W == 2 ? 1 : 0;
  localparam DEPTH = 16384 >> LSB;
  wire [17:0] DIA = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
  wire [13:0] ADA = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
  wire [17:0] DIB = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
  wire [13:0] ADB = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
  reg [W-1:0] mem [0:DEPTH-1];
  reg [W-1:0] latch_b, outreg_b;
  wire [17:0] DOB = REGMODE_B == "OUTREG" ? outreg_b : latch_b;
  integer i;
  initial begin
    if (DATA_WIDTH_A != W || !(W == 1 || W == 2 || W == 4 || W == 9 || W == 18) || REGMODE_A != "NOREG" ||
        !(REGMODE_B == "NOREG" || REGMODE_B == "OUTREG") || WRITEMODE_A != "NORMAL" ||
        CSDECODE_A != "0b000" || CSDECODE_B != "0b000") begin
      $display("DP16KD model: unsupported configuration (%m)");
      $finish(1);
    end
    for (i = 0; i < DEPTH; i = i + 1) mem[i] = 0;
    latch_b = 0;
    outreg_b = 0;
  end
  // In 18-bit mode AD[1:0] of the writing port are its byte enables.
  wire [W-1:0] lanes = W == 18 ? {{(W/2){ADA[1]}}, {(W - W/2){ADA[0]}}} : {W{1'b1}};
  always @(posedge CLKA)
    if (CEA && WEA && {CSA2, CSA1, CSA0} == 3'b000)
      mem[ADA[13:LSB]] <= (mem[ADA[13:LSB]] & ~lanes) | (DIA[W-1:0] & lanes);
  always @(posedge CLKB) begin
    if (WEB || RSTB) begin
      $display("DP16KD model: port B writes or resets are not modelled (%m)");
      $finish(1);
    end
    if (CEB && {CSB2, CSB1, CSB0} == 3'b000) latch_b <= mem[ADB[13:LSB]];
    if (OCEB) outreg_b <= latch_b;
  end
  assign DOB0 = DOB[0];
  assign DOB1 = DOB[1];
  assign DOB2 = DOB[2];
  assign DOB3 = DOB[3];
  assign DOB4 = DOB[4];
  assign DOB5 = DOB[5];
  assign DOB6 = DOB[6];
  assign DOB7 = DOB[7];
  assign DOB8 = DOB[8];
  assign DOB9 = DOB[9];
  assign DOB10 = DOB[10];
  assign DOB11 = DOB[11];
  assign DOB12 = DOB[12];
  assign DOB13 = DOB[13];
  assign DOB14 = DOB[14];
  assign DOB15 = DOB[15];
  assign DOB16 = DOB[16];
  assign DOB17 = DOB[17];
  assign DOA0 = 1'b0;
  assign DOA1 = 1'b0;
  assign DOA2 = 1'b0;
  assign DOA3 = 1'b0;
  assign DOA4 = 1'b0;
  assign DOA5 = 1'b0;
  assign DOA6 = 1'b0;
  assign DOA7 = 1'b0;
  assign DOA8 = 1'b0;
  assign DOA9 = 1'b0;
  assign DOA10 = 1'b0;
  assign DOA11 = 1'b0;
  assign DOA12 = 1'b0;
  assign DOA13 = 1'b0;
  assign DOA14 = 1'b0;
  assign DOA15 = 1'b0;
  assign DOA16 = 1'b0;
  assign DOA17 = 1'b0;
endmodule

// MULT18X18D as a plain 18x18 multiplier (SOURCEA/B = 0, C unused) with each of its input, pipeline and
// output registers either off ("NONE") or on CLK0 with CE0 and RST0.
module MULT18X18D (
  A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17, B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17, C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14, C15, C16, C17, SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK3, CLK2, CLK1, CLK0, CE3, CE2, CE1, CE0, RST3, RST2, RST1, RST0, P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17, P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31, P32, P33, P34, P35);
  input A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0;
  input B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0;
  input C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0;
  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK3, CLK2, CLK1, CLK0, CE3, CE2, CE1, CE0, RST3, RST2, RST1, RST0;
  output P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0;
  parameter REG_INPUTA_CLK = "NONE";
  parameter REG_INPUTA_CE = "CE0";
  parameter REG_INPUTA_RST = "RST0";
  parameter REG_INPUTB_CLK = "NONE";
  parameter REG_INPUTB_CE = "CE0";
  parameter REG_INPUTB_RST = "RST0";
  parameter REG_INPUTC_CLK = "NONE";
  parameter REG_PIPELINE_CLK = "NONE";
  parameter REG_PIPELINE_CE = "CE0";
  parameter REG_PIPELINE_RST = "RST0";
  parameter REG_OUTPUT_CLK = "NONE";
  parameter REG_OUTPUT_CE = "CE0";
  parameter REG_OUTPUT_RST = "RST0";
  parameter GSR = "ENABLED";
  parameter RESETMODE = "SYNC";
  parameter SOURCEB_MODE = "B_SHIFT";
  parameter MULT_BYPASS = "DISABLED";
  wire [17:0] A = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
  wire [17:0] B = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
  reg [17:0] a_r, b_r;
  reg sa_r, sb_r;
  reg [35:0] pipe_r, p_r;
  wire [17:0] a = REG_INPUTA_CLK == "CLK0" ? a_r : A;
  wire [17:0] b = REG_INPUTB_CLK == "CLK0" ? b_r : B;
  wire sa = REG_INPUTA_CLK == "CLK0" ? sa_r : SIGNEDA;
  wire sb = REG_INPUTB_CLK == "CLK0" ? sb_r : SIGNEDB;
  wire [35:0] a_ext = {{18{sa & a[17]}}, a};
  wire [35:0] b_ext = {{18{sb & b[17]}}, b};
  wire [35:0] product = a_ext * b_ext;
  wire [35:0] piped = REG_PIPELINE_CLK == "CLK0" ? pipe_r : product;
  wire [35:0] P = REG_OUTPUT_CLK == "CLK0" ? p_r : piped;
  function ok(input [8*8-1:0] clk, input [8*8-1:0] ce, input [8*8-1:0] rst);
    ok = clk == "NONE" || (clk == "CLK0" && ce == "CE0" && rst == "RST0");
  endfunction
  initial begin
    if (!ok(REG_INPUTA_CLK, REG_INPUTA_CE, REG_INPUTA_RST) || !ok(REG_INPUTB_CLK, REG_INPUTB_CE, REG_INPUTB_RST) ||
        !ok(REG_PIPELINE_CLK, REG_PIPELINE_CE, REG_PIPELINE_RST) ||
        !ok(REG_OUTPUT_CLK, REG_OUTPUT_CE, REG_OUTPUT_RST) || REG_INPUTC_CLK != "NONE" ||
        MULT_BYPASS != "DISABLED" || RESETMODE != "SYNC") begin
      $display("MULT18X18D model: unsupported configuration (%m)");
      $finish(1);
    end
    {a_r, b_r, sa_r, sb_r, pipe_r, p_r} = 0;
  end
  always @(posedge CLK0) begin
    if (SOURCEA || SOURCEB) begin
      $display("MULT18X18D model: the shift-register inputs (SOURCEA/B) are not modelled (%m)");
      $finish(1);
    end
    if (RST0) {a_r, b_r, sa_r, sb_r, pipe_r, p_r} <= 0;
    else if (CE0) begin
      a_r <= A; b_r <= B; sa_r <= SIGNEDA; sb_r <= SIGNEDB;
      pipe_r <= product;
      p_r <= piped;
    end
  end
  assign P0 = P[0];
  assign P1 = P[1];
  assign P2 = P[2];
  assign P3 = P[3];
  assign P4 = P[4];
  assign P5 = P[5];
  assign P6 = P[6];
  assign P7 = P[7];
  assign P8 = P[8];
  assign P9 = P[9];
  assign P10 = P[10];
  assign P11 = P[11];
  assign P12 = P[12];
  assign P13 = P[13];
  assign P14 = P[14];
  assign P15 = P[15];
  assign P16 = P[16];
  assign P17 = P[17];
  assign P18 = P[18];
  assign P19 = P[19];
  assign P20 = P[20];
  assign P21 = P[21];
  assign P22 = P[22];
  assign P23 = P[23];
  assign P24 = P[24];
  assign P25 = P[25];
  assign P26 = P[26];
  assign P27 = P[27];
  assign P28 = P[28];
  assign P29 = P[29];
  assign P30 = P[30];
  assign P31 = P[31];
  assign P32 = P[32];
  assign P33 = P[33];
  assign P34 = P[34];
  assign P35 = P[35];
endmodule
