/*
 * flexmig guest workload: a 512-byte boot sector that keeps writing guest memory in a known pattern.
 * Modelled on QEMU's tests/migration/i386/a-b-bootblock.S (see reference/qemu-migration.md section 8).
 *
 * Real mode -> 32-bit protected mode (flat GDT), A20 on, 'A' to COM1; then forever: for each 4 KiB
 * page in [MEM_START, MEM_END) increment the page's first byte, spinning DELAY iterations after each
 * page (0 = as fast as the CPU goes; the delay sets the dirty rate and is slowed down by auto-converge's
 * throttle like any guest work). After every MARK_EVERY full passes write 'B' to COM1.
 *
 * Parameters are given at build time with `as --defsym NAME=VALUE` (build-guest.ts):
 *   MEM_START   first byte of the range, page aligned, >= 1 MiB
 *   MEM_END     end of the range (exclusive), page aligned
 *   MARK_EVERY  passes between two 'B' markers (>= 1)
 *   DELAY       spin iterations after each page write (>= 0)
 *   SAMPLE_EVERY page writes between two CPUID samples (>= 1)
 *
 * CPUID record (what the guest sees; read back by the agent, cpuid-record.ts): at boot, and again after
 * every SAMPLE_EVERY page writes (a few times a second: a sample after a resume is fresh), the guest
 * executes CPUID for each (leaf, subleaf)
 * of cpuid_table and writes, at physical address CPUID_AREA (0x9000, below the workload range):
 *   +0   u32  magic 'FXCP' (0x50435846)
 *   +4   u32  sequence: odd while the rows are being written, even when they are complete; +2 per sample
 *   +8   u32  number of rows N
 *   +12  u32  0
 *   +16  N rows of 24 bytes: leaf, subleaf, eax, ebx, ecx, edx (u32 little-endian each)
 * cpuid_table entries are 16 bits: bits 0-7 the leaf's low byte, bits 8-13 the subleaf, bits 14-15 the
 * leaf's top two bits (0x80000000 range = 10b).
 */
        .set    CPUID_AREA, 0x9000
        .code16
        .text
        .globl _start
_start:
        cli
        cld
        xorw    %ax, %ax
        movw    %ax, %ds
        lgdtl   gdtdesc
        movl    %cr0, %eax
        orl     $1, %eax
        movl    %eax, %cr0
        ljmpl   $8, $pmode

        .code32
pmode:
        movl    $16, %eax
        movl    %eax, %ds
        movl    %eax, %es
        movl    %eax, %fs
        movl    %eax, %gs
        movl    %eax, %ss
        /* A20 through the fast A20 gate (port 0x92) */
        movw    $0x92, %dx
        inb     (%dx), %al
        orb     $2, %al
        outb    %al, (%dx)
        movl    $0x7c00, %esp
        movw    $0x3f8, %dx
        movb    $'A', %al
        outb    %al, (%dx)
        movl    $0, CPUID_AREA+4
        call    cpuid_sample
        movl    $SAMPLE_EVERY, %edi     /* page writes until the next CPUID sample */
        xorl    %ecx, %ecx              /* passes since the last marker */
mainloop:
        movl    $MEM_START, %ebx
page:
        incb    (%ebx)
        movl    $DELAY, %esi
        testl   %esi, %esi
        jz      2f
1:      decl    %esi
        jnz     1b
2:      decl    %edi
        jnz     3f
        call    cpuid_sample
        movl    $SAMPLE_EVERY, %edi
3:      addl    $4096, %ebx
        cmpl    $MEM_END, %ebx
        jb      page
        incl    %ecx
        cmpl    $MARK_EVERY, %ecx
        jb      mainloop
        xorl    %ecx, %ecx
        movb    $'B', %al
        outb    %al, (%dx)
        jmp     mainloop

cpuid_sample:
        pushal
        movl    $CPUID_AREA, %edi
        incl    4(%edi)                 /* odd: being written */
        movl    $0x50435846, (%edi)
        movl    $((cpuid_table_end - cpuid_table) / 2), 8(%edi)
        movl    $0, 12(%edi)
        addl    $16, %edi
        movl    $cpuid_table, %esi
1:      movzwl  (%esi), %eax
        movl    %eax, %ecx
        shrl    $8, %ecx
        andl    $0x3f, %ecx             /* subleaf */
        movl    %eax, %edx
        andl    $0xc000, %edx
        shll    $16, %edx
        movzbl  %al, %eax
        orl     %edx, %eax              /* leaf */
        movl    %eax, (%edi)
        movl    %ecx, 4(%edi)
        cpuid
        movl    %eax, 8(%edi)
        movl    %ebx, 12(%edi)
        movl    %ecx, 16(%edi)
        movl    %edx, 20(%edi)
        addl    $24, %edi
        addl    $2, %esi
        cmpl    $cpuid_table_end, %esi
        jb      1b
        incl    CPUID_AREA+4            /* even: complete */
        popal
        ret

        /* the leaves the catalog's CPUID features live in (libs/cpu-models), and 0x80000000 (the maximum extended leaf) */
        .p2align 1
cpuid_table:
        .word   0x0000, 0x0001, 0x0006, 0x0007, 0x0107, 0x0207, 0x010d, 0x010f, 0x0012, 0x0112, 0x0014
        .word   0x011e, 0x0024, 0x0124, 0x0029
        .word   0x8000, 0x8001, 0x8007, 0x8008, 0x800a, 0x8021, 0x8022
cpuid_table_end:

        .p2align 3
gdt:
        .quad   0                               /* null */
        .word   0xffff, 0                       /* 8: code, flat 4 GiB, 32-bit */
        .byte   0, 0x9a, 0xcf, 0
        .word   0xffff, 0                       /* 16: data, flat 4 GiB */
        .byte   0, 0x92, 0xcf, 0
gdtdesc:
        .word   gdtdesc - gdt - 1
        .long   gdt

        .org    510
        .byte   0x55, 0xaa
