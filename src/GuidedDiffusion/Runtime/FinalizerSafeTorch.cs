using System.ComponentModel;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Runtime;

/// <summary>
/// Finalizer-safe stand-ins for the TorchSharp members that create a <see cref="Scalar"/> the caller never sees
/// (<c>a + b</c> passes a fresh alpha = 1, <c>x * 0.5</c> converts 0.5, <c>t.ToDouble()</c> reads through a
/// temporary). The build rewrites every call to those members in our assemblies into a call to the method here
/// that names it (<c>build/KeepAliveWeaver</c>); code keeps writing <c>a + b</c>.
/// </summary>
/// <remarks>
/// Why: TorchSharp passes raw handles to libtorch, and a <see cref="Scalar"/> has a finalizer that frees its
/// native value. Once its handle is loaded the managed object is dead to the JIT, so a collection started by
/// another thread during the native call can finalize it while libtorch still reads it — a use after free that
/// shows up as "Expected false to be true … toFloat" or a segfault (TorchSharp 0.107; its open pull requests
/// #1434 and #1496 dispose such Scalars). Here every Scalar is held by a local or a per-thread ring until after
/// the native call returns. Tensor arguments have the same race; the weaver routes every other TorchSharp call
/// with object arguments through a generated wrapper that keeps them alive (<c>KeepAliveWrappers</c>). <c>FinalizerSafetyTests</c> checks that no such call is left in the compiled
/// assemblies and runs training, sampling and evaluation under a thread that collects without pause.
/// </remarks>
[EditorBrowsable(EditorBrowsableState.Never)]
public static class FinalizerSafeTorch
{
    // Alpha of add: an integer Scalar, as TorchSharp's add(target) passes (valid for integer tensors too).
    private static readonly Scalar One = 1.ToScalar();

    // The Scalars made by implicit conversions at our call sites: each is consumed by the next TorchSharp call
    // on the same thread, long before 256 newer conversions on that thread overwrite its slot.
    [ThreadStatic] private static Scalar?[]? ring;
    [ThreadStatic] private static int next;

    private static Scalar Held(Scalar s)
    {
        var r = ring ??= new Scalar?[256];
        r[next] = s;
        next = (next + 1) % r.Length;
        return s;
    }

    // --- implicit conversions written at our call sites (clamp(min: 0.0), full(..., value), ...) ---

    /// <summary>Replaces <c>Scalar.op_Implicit(int)</c>.</summary>
    [ReplacesTorchSharp(typeof(Scalar), "op_Implicit")] public static Scalar ScalarOf(int value) => Held(value.ToScalar());
    /// <summary>Replaces <c>Scalar.op_Implicit(long)</c>.</summary>
    [ReplacesTorchSharp(typeof(Scalar), "op_Implicit")] public static Scalar ScalarOf(long value) => Held(value.ToScalar());
    /// <summary>Replaces <c>Scalar.op_Implicit(float)</c>.</summary>
    [ReplacesTorchSharp(typeof(Scalar), "op_Implicit")] public static Scalar ScalarOf(float value) => Held(value.ToScalar());
    /// <summary>Replaces <c>Scalar.op_Implicit(double)</c>.</summary>
    [ReplacesTorchSharp(typeof(Scalar), "op_Implicit")] public static Scalar ScalarOf(double value) => Held(value.ToScalar());
    /// <summary>Replaces <c>Scalar.op_Implicit(bool)</c>.</summary>
    [ReplacesTorchSharp(typeof(Scalar), "op_Implicit")] public static Scalar ScalarOf(bool value) => Held(value.ToScalar());

    // --- tensor ± tensor: TorchSharp passes a fresh alpha = 1 ---

    /// <summary>Replaces <c>Tensor + Tensor</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Addition")]
    public static Tensor Add(Tensor left, Tensor right) => Kept(left.add(right, One), left, right);
    /// <summary>Replaces <c>Tensor.add(Tensor)</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "add", Instance = true)]
    public static Tensor AddMethod(Tensor self, Tensor other) => Kept(self.add(other, One), self, other);
    /// <summary>Replaces <c>Tensor.add_(Tensor)</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "add_", Instance = true)]
    public static Tensor AddInPlace(Tensor self, Tensor other) => Kept(self.add_(other, One), self, other);

    /// <summary>Replaces <c>Tensor.add(Scalar)</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "add", Instance = true)]
    public static Tensor AddMethod(Tensor self, Scalar scalar) { var r = Kept(self.add(scalar, One), self); GC.KeepAlive(scalar); return r; }
    /// <summary>Replaces <c>Tensor.add_(Scalar)</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "add_", Instance = true)]
    public static Tensor AddInPlace(Tensor self, Scalar scalar) { var r = Kept(self.add_(scalar, One), self); GC.KeepAlive(scalar); return r; }

    // --- tensor ∘ number and number ∘ tensor: TorchSharp converts the number to a Scalar it drops ---

    /// <summary>Replaces <c>Tensor + int</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Addition")] public static Tensor Add(Tensor left, int right) => Plus(left, right.ToScalar());
    /// <summary>Replaces <c>Tensor + long</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Addition")] public static Tensor Add(Tensor left, long right) => Plus(left, right.ToScalar());
    /// <summary>Replaces <c>Tensor + float</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Addition")] public static Tensor Add(Tensor left, float right) => Plus(left, right.ToScalar());
    /// <summary>Replaces <c>Tensor + double</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Addition")] public static Tensor Add(Tensor left, double right) => Plus(left, right.ToScalar());
    /// <summary>Replaces <c>int + Tensor</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Addition")] public static Tensor Add(int left, Tensor right) => Add(right, left);
    /// <summary>Replaces <c>long + Tensor</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Addition")] public static Tensor Add(long left, Tensor right) => Add(right, left);
    /// <summary>Replaces <c>float + Tensor</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Addition")] public static Tensor Add(float left, Tensor right) => Add(right, left);
    /// <summary>Replaces <c>double + Tensor</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Addition")] public static Tensor Add(double left, Tensor right) => Add(right, left);

    /// <summary>Replaces <c>Tensor - int</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Subtraction")] public static Tensor Subtract(Tensor left, int right) => Minus(left, right.ToScalar());
    /// <summary>Replaces <c>Tensor - long</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Subtraction")] public static Tensor Subtract(Tensor left, long right) => Minus(left, right.ToScalar());
    /// <summary>Replaces <c>Tensor - float</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Subtraction")] public static Tensor Subtract(Tensor left, float right) => Minus(left, right.ToScalar());
    /// <summary>Replaces <c>Tensor - double</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Subtraction")] public static Tensor Subtract(Tensor left, double right) => Minus(left, right.ToScalar());
    // number - tensor: TorchSharp computes (-right) + left; the same two ops here.
    /// <summary>Replaces <c>int - Tensor</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Subtraction")] public static Tensor Subtract(int left, Tensor right) => NegatedPlus(right, left.ToScalar());
    /// <summary>Replaces <c>long - Tensor</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Subtraction")] public static Tensor Subtract(long left, Tensor right) => NegatedPlus(right, left.ToScalar());
    /// <summary>Replaces <c>float - Tensor</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Subtraction")] public static Tensor Subtract(float left, Tensor right) => NegatedPlus(right, left.ToScalar());
    /// <summary>Replaces <c>double - Tensor</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Subtraction")] public static Tensor Subtract(double left, Tensor right) => NegatedPlus(right, left.ToScalar());

    /// <summary>Replaces <c>Tensor * int</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Multiply")] public static Tensor Multiply(Tensor left, int right) => Times(left, right.ToScalar());
    /// <summary>Replaces <c>Tensor * long</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Multiply")] public static Tensor Multiply(Tensor left, long right) => Times(left, right.ToScalar());
    /// <summary>Replaces <c>Tensor * float</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Multiply")] public static Tensor Multiply(Tensor left, float right) => Times(left, right.ToScalar());
    /// <summary>Replaces <c>Tensor * double</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Multiply")] public static Tensor Multiply(Tensor left, double right) => Times(left, right.ToScalar());
    /// <summary>Replaces <c>int * Tensor</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Multiply")] public static Tensor Multiply(int left, Tensor right) => Multiply(right, left);
    /// <summary>Replaces <c>long * Tensor</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Multiply")] public static Tensor Multiply(long left, Tensor right) => Multiply(right, left);
    /// <summary>Replaces <c>float * Tensor</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Multiply")] public static Tensor Multiply(float left, Tensor right) => Multiply(right, left);
    /// <summary>Replaces <c>double * Tensor</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Multiply")] public static Tensor Multiply(double left, Tensor right) => Multiply(right, left);

    /// <summary>Replaces <c>Tensor / int</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Division")] public static Tensor Divide(Tensor left, int right) => Over(left, right.ToScalar());
    /// <summary>Replaces <c>Tensor / long</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Division")] public static Tensor Divide(Tensor left, long right) => Over(left, right.ToScalar());
    /// <summary>Replaces <c>Tensor / float</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Division")] public static Tensor Divide(Tensor left, float right) => Over(left, right.ToScalar());
    /// <summary>Replaces <c>Tensor / double</c>.</summary>
    [ReplacesTorchSharp(typeof(Tensor), "op_Division")] public static Tensor Divide(Tensor left, double right) => Over(left, right.ToScalar());

    /// <summary>Replaces <c>Tensor.square()</c> (TorchSharp: <c>pow(2)</c>).</summary>
    [ReplacesTorchSharp(typeof(Tensor), "square", Instance = true)]
    public static Tensor Square(Tensor self) { using var two = 2.ToScalar(); return Kept(self.pow(two), self); }

    // --- reading one element: TorchSharp reads it through a Scalar it drops ---

    /// <summary>Replaces <c>TensorExtensionMethods.ToDouble(Tensor)</c>.</summary>
    [ReplacesTorchSharp(typeof(TensorExtensionMethods), "ToDouble")]
    public static double ToDouble(Tensor value) { using var s = value.ToScalar(); return Kept(s.ToDouble(), value); }
    /// <summary>Replaces <c>TensorExtensionMethods.ToSingle(Tensor)</c>.</summary>
    [ReplacesTorchSharp(typeof(TensorExtensionMethods), "ToSingle")]
    public static float ToSingle(Tensor value) { using var s = value.ToScalar(); return Kept(s.ToSingle(), value); }
    /// <summary>Replaces <c>TensorExtensionMethods.ToInt64(Tensor)</c>.</summary>
    [ReplacesTorchSharp(typeof(TensorExtensionMethods), "ToInt64")]
    public static long ToInt64(Tensor value) { using var s = value.ToScalar(); return Kept(s.ToInt64(), value); }
    /// <summary>Replaces <c>TensorExtensionMethods.ToBoolean(Tensor)</c>.</summary>
    [ReplacesTorchSharp(typeof(TensorExtensionMethods), "ToBoolean")]
    public static bool ToBoolean(Tensor value) { using var s = value.ToScalar(); return Kept(s.ToBoolean(), value); }

    // --- arange's default start and step ---

    /// <summary>Replaces <c>torch.arange(stop, dtype, device, requires_grad)</c> (TorchSharp: start 0, step 1).</summary>
    [ReplacesTorchSharp(typeof(torch), "arange")]
    public static Tensor Arange(Scalar stop, ScalarType? dtype, Device? device, bool requires_grad)
    {
        using var start = 0.ToScalar();
        return Arange(start, stop, dtype, device, requires_grad);
    }

    /// <summary>Replaces <c>torch.arange(start, stop, dtype, device, requires_grad)</c> (TorchSharp: step 1).</summary>
    [ReplacesTorchSharp(typeof(torch), "arange")]
    public static Tensor Arange(Scalar start, Scalar stop, ScalarType? dtype, Device? device, bool requires_grad)
    {
        using var step = 1.ToScalar();
        var result = arange(start, stop, step, dtype, device, requires_grad);
        GC.KeepAlive(start);
        GC.KeepAlive(stop);
        return result;
    }

    // One implementation per operation; each disposes the Scalar it is given once the native call has returned.
    private static Tensor Plus(Tensor left, Scalar right) { using (right) return Kept(left.add(right, One), left); }
    private static Tensor Minus(Tensor left, Scalar right) { using (right) return Kept(left.sub(right), left); }
    private static Tensor Times(Tensor left, Scalar right) { using (right) return Kept(left.mul(right), left); }
    private static Tensor Over(Tensor left, Scalar right) { using (right) return Kept(left.div(right), left); }

    private static Tensor NegatedPlus(Tensor right, Scalar left)
    {
        using (left)
        using (var negated = right.negative())
            return Kept(negated.add(left, One), right);
    }

    // The operands stay reachable until the native call has returned.
    private static T Kept<T>(T result, Tensor a, Tensor? b = null)
    {
        GC.KeepAlive(a);
        GC.KeepAlive(b);
        return result;
    }
}

/// <summary>
/// Marks a method of <see cref="FinalizerSafeTorch"/> as the stand-in for a TorchSharp member: the member of
/// <see cref="Type"/> called <see cref="Member"/> whose parameters are this method's (minus the first, the
/// instance, when <see cref="Instance"/>). Read by the build's weaver.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class ReplacesTorchSharpAttribute(Type type, string member) : Attribute
{
    /// <summary>The TorchSharp type that declares the replaced member.</summary>
    public Type Type { get; } = type;

    /// <summary>The replaced member's name.</summary>
    public string Member { get; } = member;

    /// <summary>Whether the replaced member is an instance method (its instance is this method's first parameter).</summary>
    public bool Instance { get; init; }
}
