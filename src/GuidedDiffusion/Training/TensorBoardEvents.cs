using System.Buffers.Binary;

namespace GuidedDiffusion.Training;

/// <summary>
/// Just enough of TensorBoard's event files to drop events by step: a TFRecord stream (u64 length, u32 masked
/// CRC of it, the bytes, u32 masked CRC of them) of <c>Event</c> protobufs whose field 2 is the int64 step.
/// Kept records are copied byte for byte, so their CRCs stay valid.
/// </summary>
public static class TensorBoardEvents
{
    /// <summary>The steps of the summary events in <paramref name="path"/>, one entry per event, in file order.</summary>
    public static IReadOnlyList<long> SummarySteps(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var steps = new List<long>();
        foreach (var (offset, length) in Records(bytes))
            if (TryReadStep(bytes.AsSpan(offset + 12, length), out var step, out bool summary) && summary) steps.Add(step);
        return steps;
    }

    private static IEnumerable<(int Offset, int Length)> Records(byte[] bytes)
    {
        int offset = 0;
        while (offset + 12 <= bytes.Length)
        {
            ulong length = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(offset));
            if (length > (ulong)(bytes.Length - offset - 16)) yield break; // a torn last record (the writer was killed)
            yield return (offset, (int)length);
            offset += 16 + (int)length;
        }
    }

    /// <summary>Rewrites <paramref name="path"/> without the summary events at step ≥ <paramref name="firstStep"/>; returns how many were dropped.</summary>
    public static int DropFromStep(string path, long firstStep)
    {
        var bytes = File.ReadAllBytes(path);
        var kept = new MemoryStream(bytes.Length);
        int dropped = 0, end = 0;
        foreach (var (offset, length) in Records(bytes))
        {
            if (TryReadStep(bytes.AsSpan(offset + 12, length), out var step, out bool summary) && summary && step >= firstStep) dropped++;
            else kept.Write(bytes, offset, 16 + length);
            end = offset + 16 + length;
        }
        if (dropped > 0 || end != bytes.Length)
            AtomicFile.Write(path, stream => kept.WriteTo(stream));
        return dropped;
    }

    /// <summary>Reads the step (field 2, varint) and whether a summary (field 5) is present.</summary>
    /// <param name="data">One record's bytes (an Event protobuf).</param>
    /// <param name="step">Field 2, or 0.</param>
    /// <param name="hasSummary">Whether field 5 is present.</param>
    /// <returns>False when the bytes are not a well-formed protobuf message.</returns>
    public static bool TryReadStep(ReadOnlySpan<byte> data, out long step, out bool hasSummary)
    {
        step = 0;
        hasSummary = false;
        int i = 0;
        while (i < data.Length)
        {
            if (!TryVarint(data, ref i, out ulong key)) return false;
            int field = (int)(key >> 3), wire = (int)(key & 7);
            switch (wire)
            {
                case 0:
                    if (!TryVarint(data, ref i, out ulong v)) return false;
                    if (field == 2) step = (long)v;
                    break;
                case 1: i += 8; break;
                case 5: i += 4; break;
                case 2:
                    if (!TryVarint(data, ref i, out ulong len) || len > (ulong)(data.Length - i)) return false;
                    if (field == 5) hasSummary = true;
                    i += (int)len;
                    break;
                default: return false;
            }
        }
        return i == data.Length;
    }

    private static bool TryVarint(ReadOnlySpan<byte> data, ref int i, out ulong value)
    {
        value = 0;
        for (int shift = 0; shift < 64 && i < data.Length; shift += 7)
        {
            byte b = data[i++];
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return true;
        }
        return false;
    }
}
