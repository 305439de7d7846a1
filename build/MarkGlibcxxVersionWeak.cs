using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

/// <summary>
/// Sets VER_FLG_WEAK on the version-need (SHT_GNU_verneed) entry named <see cref="VersionName"/> in
/// 64-bit little-endian ELF files. Two bytes change; running it again changes nothing.
/// </summary>
public class MarkGlibcxxVersionWeak : Task
{
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlgWeak = 0x2;

    [Required] public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();
    [Required] public string VersionName { get; set; } = "";

    public override bool Execute()
    {
        foreach (var item in Files)
        {
            var path = item.ItemSpec;
            try
            {
                var bytes = File.ReadAllBytes(path);
                int changed = Patch(bytes, VersionName);
                if (changed > 0)
                {
                    var tmp = path + ".patching";
                    File.WriteAllBytes(tmp, bytes);
                    File.Copy(tmp, path, overwrite: true);
                    File.Delete(tmp);
                    Log.LogMessage(MessageImportance.High, $"{Path.GetFileName(path)}: marked {VersionName} weak (Debian 12 libstdc++ compatibility)");
                }
            }
            catch (Exception e)
            {
                Log.LogError($"Could not patch {path}: {e.Message}");
                return false;
            }
        }
        return true;
    }

    private static int Patch(byte[] b, string versionName)
    {
        if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (b[4] != 2 || b[5] != 1) throw new InvalidDataException("only 64-bit little-endian ELF is supported");
        ulong shoff = BitConverter.ToUInt64(b, 0x28);
        int shentsize = BitConverter.ToUInt16(b, 0x3A);
        int shnum = BitConverter.ToUInt16(b, 0x3C);
        int changed = 0;
        for (int i = 0; i < shnum; i++)
        {
            int sh = checked((int)shoff + i * shentsize);
            if (BitConverter.ToUInt32(b, sh + 4) != ShtGnuVerneed) continue;
            int offset = checked((int)BitConverter.ToUInt64(b, sh + 0x18));
            int link = (int)BitConverter.ToUInt32(b, sh + 0x28);
            int strtab = checked((int)BitConverter.ToUInt64(b, (int)shoff + link * shentsize + 0x18));
            int need = offset;
            while (true)
            {
                int cnt = BitConverter.ToUInt16(b, need + 2);
                int aux = need + (int)BitConverter.ToUInt32(b, need + 8);
                for (int a = 0; a < cnt; a++)
                {
                    int nameOff = strtab + (int)BitConverter.ToUInt32(b, aux + 8);
                    int end = Array.IndexOf(b, (byte)0, nameOff);
                    string name = Encoding.ASCII.GetString(b, nameOff, end - nameOff);
                    ushort flags = BitConverter.ToUInt16(b, aux + 4);
                    if (name == versionName && (flags & VerFlgWeak) == 0)
                    {
                        flags |= VerFlgWeak;
                        b[aux + 4] = (byte)(flags & 0xff);
                        b[aux + 5] = (byte)(flags >> 8);
                        changed++;
                    }
                    uint next = BitConverter.ToUInt32(b, aux + 12);
                    if (next == 0) break;
                    aux += (int)next;
                }
                uint nextNeed = BitConverter.ToUInt32(b, need + 12);
                if (nextNeed == 0) break;
                need += (int)nextNeed;
            }
        }
        return changed;
    }
}
